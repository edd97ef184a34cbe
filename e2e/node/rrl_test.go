package node

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const rrlConfig = `identity:
  name: rrl-test
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
metrics:
  listen: {{.MetricsAddr}}
limits:
  rrl:
    rate: RATE
    slip: 2
`

// burst sends n identical UDP queries from one socket back to back and
// sorts the answers: full ones, truncated ones (TC, no records), none.
func burst(t *testing.T, n *proc, count int) (full, truncated, missing int) {
	t.Helper()
	c, err := net.Dial("udp", n.addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	for i := range count {
		m := question("mail.example.com.", dns.TypeA, dns.ClassINET)
		m.Id = uint16(i + 1)
		if _, err := c.Write(packMsg(t, m)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint16]bool{}
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for len(seen) < count {
		k, err := c.Read(buf)
		if err != nil {
			break // the deadline: the rest were dropped
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil || seen[r.Id] {
			t.Fatalf("bad or repeated answer %v: %v", r, err)
		}
		seen[r.Id] = true
		switch {
		case r.Truncated && len(r.Answer) == 0 && len(r.Question) == 1:
			truncated++
		case !r.Truncated && len(r.Answer) == 1:
			full++
		default:
			t.Errorf("unexpected answer: %v", r)
		}
	}
	return full, truncated, count - len(seen)
}

// TestRRL runs the node with response rate limiting (5 answers a second,
// slip 2) and sends a burst of 40 identical queries over UDP: 5 answered (up
// to 10 if the burst spans a second), then every other one truncated and
// the rest dropped, counted in the metrics; TCP still answers; a reload
// with the rate at 0 turns limiting off.
func TestRRL(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/example.com.zone", zoneText("example.com.", 1, "mail IN A 192.0.2.25"))
	n := startNode(t, nodeOpts{dir: dir, metrics: true, config: strings.Replace(rrlConfig, "RATE", "5", 1)})

	full, truncated, missing := burst(t, n, 40)
	t.Logf("burst of 40 at 5/s, slip 2: %d answered, %d truncated, %d dropped", full, truncated, missing)
	if full < 5 || full > 10 || truncated < 10 || missing < 10 || truncated-missing > 1 || missing-truncated > 1 {
		t.Errorf("%d answered, %d truncated, %d dropped; want 5 to 10 answered and the rest half truncated, half dropped",
			full, truncated, missing)
	}
	fams := n.scrape()
	if v, _ := metricValue(fams, "anycastd_rrl_limited_total", map[string]string{"action": "drop"}); int(v) != missing {
		t.Errorf("anycastd_rrl_limited_total{action=drop} = %v, want %d", v, missing)
	}
	if v, _ := metricValue(fams, "anycastd_rrl_limited_total", map[string]string{"action": "slip"}); int(v) != truncated {
		t.Errorf("anycastd_rrl_limited_total{action=slip} = %v, want %d", v, truncated)
	}
	// TCP is not limited: the truncated answers send clients there.
	for range 10 {
		expectA(t, mustExchange(t, "tcp", n.addr(), question("mail.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.25")
	}

	n.writeConfig(strings.Replace(rrlConfig, "RATE", "0", 1))
	if log := n.reload(); !strings.Contains(log, "response rate limiting changed") {
		t.Errorf("reload did not log the change:\n%s", log)
	}
	if full, truncated, missing := burst(t, n, 40); full != 40 {
		t.Errorf("limiting off: %d answered, %d truncated, %d dropped; want all 40 answered", full, truncated, missing)
	}
}
