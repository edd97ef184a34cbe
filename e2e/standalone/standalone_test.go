//go:build linux

// Package standalone tests `anycastd standalone`: the control plane and one
// node in one process, the node fed by NOTIFY, catalog and IXFR.
package standalone

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

func query(addr, name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// waitA polls until name has the A record want, returning how long it took.
func waitA(t *testing.T, addr, name, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if r, err := query(addr, name); err == nil && r.Rcode == dns.RcodeSuccess {
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok && a.A.String() == want {
					return time.Since(start)
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s A %s not served within %v", name, want, limit)
	return 0
}

func TestStandalone(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	data := t.TempDir()
	dnsAddr := testkit.FreeAddr(t)
	api := testkit.FreeAddr(t)
	p := testkit.StartProcess(t, "standalone", filepath.Join(t.TempDir(), "standalone.log"), bin, "standalone", "-data", data, "-dns", dnsAddr, "-api", api,
		"-xfr", testkit.FreeAddr(t), "-admin", testkit.FreeAddr(t),
		"-metrics", "", "-token", "test-token-0123456789")

	// The seeded example zone reaches the node through the catalog.
	d := waitA(t, dnsAddr, "www.example.com.", "192.0.2.80", 15*time.Second)
	t.Logf("example zone served %v after the first query", d)

	// A record changed through the API is answered within a second.
	var worst time.Duration
	for i := 1; i <= 10; i++ {
		body := fmt.Sprintf(`{"ttl":60,"records":["198.51.100.%d"]}`, i)
		req, _ := http.NewRequestWithContext(context.Background(), "PUT",
			fmt.Sprintf("http://%s/v1/zones/example.com./rrsets/p%d.example.com./A", api, i), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer test-token-0123456789")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("PUT rrset: %s", resp.Status)
		}
		d := waitA(t, dnsAddr, fmt.Sprintf("p%d.example.com.", i), fmt.Sprintf("198.51.100.%d", i), time.Second)
		worst = max(worst, d)
	}
	t.Logf("FIGURE propagation api->served max over 10 changes: %v", worst)

	// SIGTERM ends it cleanly.
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil { // ours, by PID
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		if err := p.Err(); err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGTERM")
	}
}
