package node

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const sourceConfig = `identity:
  name: source-test
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
metrics:
  listen: {{.MetricsAddr}}
limits:
  source:
    rate: 5
    exempt: [127.0.3.0/24]
`

// sendFrom sends the packets from a UDP socket bound to local (a loopback
// address), back to back, and counts the answers that come back within a
// second.
func sendFrom(t *testing.T, n *proc, local string, packets [][]byte) (answered int) {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, net.UDPAddrFromAddrPort(n.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for _, p := range packets {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for {
		k, err := c.Read(buf)
		if err != nil {
			return answered // the deadline: the rest were dropped
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil || len(r.Answer) != 1 {
			t.Fatalf("bad answer %v: %v", r, err)
		}
		answered++
	}
}

func queries(t *testing.T, count int) [][]byte {
	out := make([][]byte, count)
	for i := range out {
		m := question("mail.example.com.", dns.TypeA, dns.ClassINET)
		m.Id = uint16(i + 1)
		out[i] = packMsg(t, m)
	}
	return out
}

// TestSourceLimit runs the node with a per-source limit of 5 queries a
// second per /24 and sends bounded bursts of 40 queries from three loopback
// /24s: a limited one gets 5 to 10 answered (10 if the burst spans a
// second), another has its own budget, an exempt one gets all 40; the
// drops are counted by reason in the metrics, with early drops of
// responses, short packets and an unserved class; TCP is not limited.
func TestSourceLimit(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/example.com.zone", zoneText("example.com.", 1, "mail IN A 192.0.2.25"))
	n := startNode(t, nodeOpts{dir: dir, metrics: true, config: sourceConfig})

	a := sendFrom(t, n, "127.0.1.1", queries(t, 40))
	b := sendFrom(t, n, "127.0.2.1", queries(t, 40))
	exempt := sendFrom(t, n, "127.0.3.1", queries(t, 40))
	t.Logf("40 queries each at 5/s: %d, %d answered; exempt: %d", a, b, exempt)
	for _, got := range []int{a, b} {
		if got < 5 || got > 10 {
			t.Errorf("limited /24: %d of 40 answered, want 5 to 10", got)
		}
	}
	if exempt != 40 {
		t.Errorf("exempt /24: %d of 40 answered, want 40", exempt)
	}

	// Garbage from the exempt /24 (not limited, so each is dropped for
	// what it is): responses, short packets, class HS.
	resp := question("mail.example.com.", dns.TypeA, dns.ClassINET)
	resp.Response = true
	hs := question("mail.example.com.", dns.TypeA, dns.ClassHESIOD)
	var garbage [][]byte
	for range 7 {
		garbage = append(garbage, packMsg(t, resp), []byte{1, 2, 3}, packMsg(t, hs))
	}
	if got := sendFrom(t, n, "127.0.3.1", garbage); got != 0 {
		t.Errorf("%d answers to garbage", got)
	}

	fams := n.scrape()
	for reason, want := range map[string]int{"source_limit": 80 - a - b, "response": 7, "short": 7, "class": 7} {
		if v, _ := metricValue(fams, "anycastd_early_drops_total", map[string]string{"reason": reason}); int(v) != want {
			t.Errorf("anycastd_early_drops_total{reason=%q} = %v, want %d", reason, v, want)
		}
	}
	// The 40 queries and the 7 of class HS, whose class is read after the
	// source is checked; responses and short packets are dropped before.
	if v, _ := metricValue(fams, "anycastd_source_exempt_total", nil); int(v) != 47 {
		t.Errorf("anycastd_source_exempt_total = %v, want 47", v)
	}
	// TCP is not limited (it has its own per-source connection caps).
	for range 10 {
		expectA(t, mustExchange(t, "tcp", n.addr(), question("mail.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.25")
	}

	// A reload that turns it off lets a burst through.
	n.writeConfig(strings.Replace(sourceConfig, "rate: 5", "rate: 0", 1)[:strings.Index(sourceConfig, "limits:")])
	n.reload()
	if got := sendFrom(t, n, "127.0.1.1", queries(t, 40)); got != 40 {
		t.Errorf("limit off: %d of 40 answered", got)
	}
}
