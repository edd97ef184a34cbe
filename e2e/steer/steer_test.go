//go:build linux

// Package steer tests steered answers (issue #14) with the real binaries:
// a pool defined with anycastctl on `anycastd standalone`'s control plane
// reaches its node as a record of the zone (catalog, AXFR, IXFR) and is
// answered per client, with and without EDNS Client Subnet.
package steer

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

const token = "steer-e2e-token-0123456789"

// standalone starts `anycastd standalone` and returns its DNS and API
// addresses.
func standalone(t *testing.T) (dnsAddr, apiAddr string) {
	t.Helper()
	bin := testkit.BuildAnycastd(t)
	dnsAddr, apiAddr = testkit.FreeAddr(t), testkit.FreeAddr(t)
	cmd := exec.Command(bin, "standalone", "-data", t.TempDir(), "-dns", dnsAddr, "-api", apiAddr,
		"-xfr", testkit.FreeAddr(t), "-admin", testkit.FreeAddr(t), "-metrics", "", "-token", token)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
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
		if t.Failed() {
			t.Logf("standalone log:\n%s", logs.String())
		}
	})
	return dnsAddr, apiAddr
}

// ctl runs anycastctl against the standalone's API and returns its output.
func ctl(t *testing.T, bin, apiAddr string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"ANYCASTCTL_API=http://" + apiAddr, "ANYCASTCTL_TOKEN=" + token}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("anycastctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ask sends one query for name/type, with an ECS option for subnet when
// it is valid, and returns the answer's addresses (with TTLs) and its ECS
// option (nil for none).
func ask(t *testing.T, c *dns.Client, addr, name string, qtype uint16, subnet *net.IPNet) (answer string, ecs *dns.EDNS0_SUBNET) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	if subnet != nil {
		ones, bits := subnet.Mask.Size()
		family := uint16(1)
		if bits == 128 {
			family = 2
		}
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family,
			SourceNetmask: uint8(ones), Address: subnet.IP})
	}
	var r *dns.Msg
	var err error
	for range 3 {
		if r, _, err = c.Exchange(m, addr); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("%s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	var parts []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			parts = append(parts, fmt.Sprintf("%s/%d", v.A, v.Hdr.Ttl))
		case *dns.AAAA:
			parts = append(parts, fmt.Sprintf("%s/%d", v.AAAA, v.Hdr.Ttl))
		}
	}
	if opt := r.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				ecs = s
			}
		}
	}
	return strings.Join(parts, " "), ecs
}

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// TestWeightedPool: a 70/30 pool defined with anycastctl is served by the
// node; 10,000 ECS subnets split within ±2 points, each with scope 24 and
// the same answer every time; without ECS one resolver gets one answer and
// no ECS option; an ECS source of 0 gets scope 0; a geo pool with its own
// region map sends each ECS subnet to its region's endpoint with the map
// prefix as scope; deleting the pool brings the static record back.
func TestWeightedPool(t *testing.T) {
	ctlBin := testkit.BuildAnycastctl(t)
	dnsAddr, apiAddr := standalone(t)
	c := &dns.Client{Timeout: time.Second}

	// The seeded zone is served, and www is a plain answer.
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		if r, _, err := c.Exchange(m, dnsAddr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("example.com. not served within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctl(t, ctlBin, apiAddr, "record", "set", "example.com", "svc", "A", "-ttl", "300", "192.0.2.99")
	start := time.Now()
	out := ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "svc", "A", "-ttl", "20", "-policy", "up,weighted",
		"192.0.2.1,weight=70", "192.0.2.2,weight=30")
	t.Logf("anycastctl pool set:\n%s", out)
	if !strings.Contains(ctl(t, ctlBin, apiAddr, "pool", "list", "example.com"), "svc.example.com. A  ttl 20  policy up,weighted") {
		t.Fatal("pool list does not show the pool")
	}

	// The pool reaches the node.
	for {
		a, _ := tryAsk(c, dnsAddr, "svc.example.com.") // NXDOMAIN until the zone's change arrives
		if a == "192.0.2.1/20" || a == "192.0.2.2/20" {
			t.Logf("FIGURE pool served %v after anycastctl pool set started", time.Since(start))
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("pool not served within 5s: answer %q", a)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// Without ECS: one answer for this resolver, no ECS option.
	first, ecs := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, nil)
	if ecs != nil {
		t.Fatalf("ECS %v in an answer to a query without", ecs)
	}
	for range 20 {
		if a, _ := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, nil); a != first {
			t.Fatalf("resolver got %q then %q", first, a)
		}
	}

	// With ECS: 10,000 subnets.
	count := map[string]int{}
	for i := range 10000 {
		subnet := cidr(fmt.Sprintf("10.%d.%d.0/24", i>>8, i&0xff))
		a, ecs := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, subnet)
		if a != "192.0.2.1/20" && a != "192.0.2.2/20" {
			t.Fatalf("%v: answer %q", subnet, a)
		}
		if ecs == nil || ecs.SourceScope != 24 || ecs.SourceNetmask != 24 || !ecs.Address.Equal(subnet.IP) {
			t.Fatalf("%v: ECS %v, want the subnet echoed with scope 24", subnet, ecs)
		}
		if i%50 == 0 {
			if again, _ := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, subnet); again != a {
				t.Fatalf("%v: %q then %q", subnet, a, again)
			}
		}
		count[a]++
	}
	share := float64(count["192.0.2.1/20"]) / 100
	t.Logf("FIGURE weighted 70/30 over 10000 ECS subnets: %.2f%% / %.2f%%", share, 100-share)
	if share < 68 || share > 72 {
		t.Errorf("70%% endpoint got %.2f%%", share)
	}

	// A /32 is used as its /24 (privacy): scope 24, the /24's answer.
	a24, _ := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, cidr("10.1.2.0/24"))
	a32, ecs := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, cidr("10.1.2.77/32"))
	if a32 != a24 || ecs == nil || ecs.SourceNetmask != 32 || ecs.SourceScope != 24 {
		t.Errorf("/32: %q (ECS %v), /24: %q", a32, ecs, a24)
	}
	// Source 0: the client's address is not to be used; scope 0.
	if _, ecs := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}); ecs == nil || ecs.SourceScope != 0 {
		t.Errorf("source 0: ECS %v, want scope 0", ecs)
	}
	// An unsteered answer echoes ECS with scope 0.
	if a, ecs := ask(t, c, dnsAddr, "www.example.com.", dns.TypeA, cidr("10.1.2.0/24")); a != "192.0.2.80/3600" || ecs == nil || ecs.SourceScope != 0 {
		t.Errorf("www: %q ECS %v, want scope 0", a, ecs)
	}
	// The pool record itself is never an answer.
	m := new(dns.Msg)
	m.SetQuestion("svc.example.com.", 65320)
	if r, _, err := c.Exchange(m, dnsAddr); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("TYPE65320 query: %v %v", r, err)
	}

	// A geo pool with its own prefix→region map.
	ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "geo", "AAAA", "-ttl", "15", "-policy", "up,geo,first-n",
		"-region", "198.51.100.0/24=eu", "-region", "203.0.113.0/24=us", "-region", "2001:db8:e0::/48=eu", "-region", "10.0.0.0/8=us",
		"2001:db8::e,region=eu", "2001:db8::5,region=us")
	geo := []struct {
		subnet *net.IPNet
		want   string
		scope  uint8
	}{
		{cidr("198.51.100.0/24"), "2001:db8::e/15", 24},
		{cidr("198.51.100.99/32"), "2001:db8::e/15", 24},
		{cidr("203.0.113.0/24"), "2001:db8::5/15", 24},
		{cidr("10.20.30.0/24"), "2001:db8::5/15", 8},
		{cidr("2001:db8:e0::/56"), "2001:db8::e/15", 48},
		{cidr("192.0.2.0/24"), "2001:db8::e/15", 24}, // in no region: first of all
	}
	start = time.Now()
	for {
		if a, _ := tryAskType(c, dnsAddr, "geo.example.com.", dns.TypeAAAA); a != "" {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("geo pool not served within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, g := range geo {
		a, ecs := ask(t, c, dnsAddr, "geo.example.com.", dns.TypeAAAA, g.subnet)
		if a != g.want || ecs == nil || ecs.SourceScope != g.scope {
			t.Errorf("geo %v: %q ECS %v, want %q scope %d", g.subnet, a, ecs, g.want, g.scope)
		}
	}
	if a, ecs := ask(t, c, dnsAddr, "geo.example.com.", dns.TypeAAAA, nil); a != "2001:db8::e/15" || ecs != nil {
		t.Errorf("geo without ECS (resolver 127.0.0.1, in no region): %q ECS %v", a, ecs)
	}

	// Deleting the pool brings the static record back.
	ctl(t, ctlBin, apiAddr, "pool", "delete", "example.com", "svc", "A")
	start = time.Now()
	for {
		a, _ := ask(t, c, dnsAddr, "svc.example.com.", dns.TypeA, cidr("10.1.2.0/24"))
		if a == "192.0.2.99/300" {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("static record not back within 5s: answer %q", a)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
