//go:build linux

package steer

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	keyName   = "steer-key."
	keySecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
)

// run starts a process that is stopped (SIGTERM) when the test ends; its
// output goes to logPath, shown when the test failed.
func run(t *testing.T, logPath, bin string, args ...string) {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = f.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			lines := strings.Split(string(data), "\n")
			t.Logf("%s (last 40 lines):\n%s", logPath, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 20s", url)
}

// TestSameAnswerEveryPoP: a control plane and three PoPs (real anycastd
// processes following it by catalog, transfers and the change stream); a
// pool defined with anycastctl gives each client the same answer and the
// same ECS scope at every PoP, and a change of the pool reaches every PoP.
func TestSameAnswerEveryPoP(t *testing.T) {
	bin, ctlBin := testkit.BuildAnycastd(t), testkit.BuildAnycastctl(t)
	dir := t.TempDir()
	apiAddr, xfrAddr, streamAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	ctlCfg := filepath.Join(dir, "control.yaml")
	if err := os.WriteFile(ctlCfg, fmt.Appendf(nil, `data_dir: %q
api: {listen: %q, tokens: [%q]}
xfr:
  listen: [%q]
  tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s}]
  catalog: {zone: catalog.invalid.}
stream: {listen: [%q]}
`, filepath.Join(dir, "control"), apiAddr, token, xfrAddr, keyName, keySecret, keyName, streamAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, filepath.Join(dir, "control.log"), bin, "control", "-config", ctlCfg)
	waitReady(t, "http://"+apiAddr+"/readyz")

	var pops []string
	for i := range 3 {
		name := fmt.Sprintf("pop%d", i)
		dnsAddr, admin := testkit.FreeAddr(t), testkit.FreeAddr(t)
		cfg := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, `identity: {name: %s}
listen: [%q]
admin: {listen: %q}
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: catalog.invalid.
  primaries: [{addr: %q, key: %s}]
control: {servers: ["http://%s"], key: %s, pop: %s}
drain_period: 0s
`, name, dnsAddr, admin, filepath.Join(dir, name), keyName, keySecret, xfrAddr, keyName, streamAddr, keyName, name), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, filepath.Join(dir, name+".log"), bin, "node", "-config", cfg)
		waitReady(t, "http://"+admin+"/readyz")
		pops = append(pops, dnsAddr)
	}

	ctl(t, ctlBin, apiAddr, "zone", "create", "example.com", "-ns", "ns1")
	ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "svc", "A", "-ttl", "20", "-policy", "up,geo,weighted",
		"-region", "10.0.0.0/9=eu", "-region", "10.128.0.0/9=us",
		"192.0.2.1,region=eu,weight=3", "192.0.2.2,region=eu,weight=1", "192.0.2.3,region=us")
	c := &dns.Client{Timeout: time.Second}
	waitAll := func(name, want string) time.Duration {
		start := time.Now()
		for _, addr := range pops {
			for {
				a, _ := tryAsk(c, addr, name)
				if a == want {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("%s at %s: %q, want %q", name, addr, a, want)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return time.Since(start)
	}
	// The resolver 127.0.0.1 is in no region: weighted among all three.
	first, _ := tryAsk(c, pops[0], "svc.example.com.")
	for first == "" {
		time.Sleep(10 * time.Millisecond)
		first, _ = tryAsk(c, pops[0], "svc.example.com.")
	}
	waitAll("svc.example.com.", first)

	// 3,000 ECS subnets: every PoP gives each the same endpoint and scope.
	regions := map[string]int{}
	for i := range 3000 {
		subnet := cidr(fmt.Sprintf("10.%d.%d.0/24", i%256, i/256))
		var ref string
		for k, addr := range pops {
			a, ecs := ask(t, c, addr, "svc.example.com.", dns.TypeA, subnet)
			got := fmt.Sprintf("%s scope %d", a, scopeOf(ecs))
			if k == 0 {
				ref = got
				regions[a]++
			} else if got != ref {
				t.Fatalf("%v: %s at %s, %s at %s", subnet, ref, pops[0], got, addr)
			}
		}
		inUS := subnet.IP[1] >= 128
		if a := strings.Fields(ref)[0]; inUS != (a == "192.0.2.3/20") {
			t.Fatalf("%v: %s, wrong region", subnet, ref)
		}
	}
	t.Logf("FIGURE 3000 ECS subnets, 3 PoPs, identical answers: %v", regions)

	// A change of the pool reaches every PoP.
	start := time.Now()
	ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "svc", "A", "-ttl", "25", "-policy", "first-n", "192.0.2.9")
	d := waitAll("svc.example.com.", "192.0.2.9/25")
	t.Logf("FIGURE pool change served by all 3 PoPs %v after anycastctl started (%v of it waiting)", time.Since(start), d)
}

// tryAsk asks for name's A records without failing the test (for
// polling); tryAskType for another type.
func tryAsk(c *dns.Client, addr, name string) (string, error) {
	return tryAskType(c, addr, name, dns.TypeA)
}

func tryAskType(c *dns.Client, addr, name string, qtype uint16) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			fmt.Fprintf(&b, "%s/%d", v.A, v.Hdr.Ttl)
		case *dns.AAAA:
			fmt.Fprintf(&b, "%s/%d", v.AAAA, v.Hdr.Ttl)
		}
	}
	return b.String(), nil
}

func scopeOf(e *dns.EDNS0_SUBNET) int {
	if e == nil {
		return -1
	}
	return int(e.SourceScope)
}
