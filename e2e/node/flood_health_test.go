package node

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestHealthUnderFlood runs a node with BGP (a passive peer nobody
// connects to) and its health check every 100 ms against its own DNS
// address, the check's source (127.0.0.1) exempt from the per-source limit,
// and floods it from loopback for 3 s from another /24 (bounded: 4 sockets,
// 3 s). The node must stay healthy throughout — absorb, don't withdraw:
// anycastd_health_healthy stays 1 and no transition happens — while the
// flood is dropped early, counted by reason.
func TestHealthUnderFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for 3 s")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bgpPort := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	writeFile(t, dir+"/example.com.zone", zoneText("example.com.", 1, "mail IN A 192.0.2.25"))
	cfg := fmt.Sprintf(`identity:
  name: flood-test
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
metrics:
  listen: {{.MetricsAddr}}
limits:
  rrl: {rate: 20, slip: 2}
  source:
    rate: 100
    exempt: [127.0.0.1]
health:
  interval: 100ms
  timeout: 80ms
  rise: 2
  fall: 2
  query_addr: "{{(index .DNSAddrs 0)}}"
drain_period: 0s
bgp:
  asn: 65001
  router_id: 192.0.2.1
  listen_port: %d
  peers: [{address: 127.0.0.1, asn: 65000, passive: true}]
  announce: [{prefix: 192.0.2.53/32}]
`, bgpPort)
	n := startNode(t, nodeOpts{dir: dir, metrics: true, config: cfg})

	healthy := func() (float64, float64) {
		fams := n.scrape()
		h, _ := metricValue(fams, "anycastd_health_healthy", nil)
		tr, _ := metricValue(fams, "anycastd_health_transitions_total", nil)
		return h, tr
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if h, _ := healthy(); h == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not healthy within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, trBefore := healthy()

	m := question("mail.example.com.", dns.TypeA, dns.ClassINET)
	p := packMsg(t, m)
	var sent atomic.Uint64
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for i := range 4 {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 9, byte(i+1))}, net.UDPAddrFromAddrPort(n.addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		wg.Go(func() {
			for time.Now().Before(stop) {
				for range 100 {
					if _, err := c.Write(p); err == nil {
						sent.Add(1)
					}
				}
			}
		})
	}
	var unhealthy int
	for time.Now().Before(stop) {
		if h, _ := healthy(); h != 1 {
			unhealthy++
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	h, trAfter := healthy()
	fams := n.scrape()
	limited, _ := metricValue(fams, "anycastd_early_drops_total", map[string]string{"reason": "source_limit"})
	t.Logf("flood of %d queries in 3 s (%.0f/s): %.0f dropped over the source limit; unhealthy in %d samples, transitions %v -> %v",
		sent.Load(), float64(sent.Load())/3, limited, unhealthy, trBefore, trAfter)
	if unhealthy > 0 || h != 1 || trAfter != trBefore {
		t.Errorf("the node did not stay healthy under the flood: %d unhealthy samples, transitions %v -> %v", unhealthy, trBefore, trAfter)
	}
	if limited == 0 {
		t.Error("nothing dropped over the source limit: the flood did not reach the node")
	}
}
