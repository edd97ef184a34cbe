//go:build linux

package node

import (
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Regression tests of bugs the end-to-end suite found in the node.

// TestTCPAnswerNotHeldBehindPartialMessage: the answer to a complete query
// must be sent even when the start of the next message is already in the
// server's read buffer. The node used to flush only when fewer than two
// bytes were buffered, so the answer waited for the rest of the next
// message and was lost when the connection closed at the idle timeout.
func TestTCPAnswerNotHeldBehindPartialMessage(t *testing.T) {
	n := tcpNode(t, "  tcp_idle_timeout: 2s\n", false)
	c := dialTCP(t, n.addr())
	q := question("a.example.com.", dns.TypeA, dns.ClassINET)
	q.Id = 4242
	data := frame(packMsg(t, q))
	data = append(data, data[:5]...) // the length and 3 bytes of a second query
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	r, err := readFramed(c)
	if err != nil {
		t.Fatalf("no answer to a complete query followed by a partial one: %v", err)
	}
	if r.Id != q.Id {
		t.Fatalf("answer ID %d, want %d", r.Id, q.Id)
	}
	expectA(t, r, "192.0.2.11")
}

// TestReloadAppliesIdentity: a reload with a valid configuration that
// changes the identity must apply it (or at least say that it does not, as
// it does for listen addresses). The node used to keep the Handler built at
// start-up, silently ignoring identity and limit changes until a restart.
func TestReloadAppliesIdentity(t *testing.T) {
	dir := t.TempDir()
	writeTwoZones(t, dir)
	n := startNode(t, nodeOpts{dir: dir, config: identityConfig(true, true, true, true)})
	checkIdentity(t, "udp", n.addr(), identityWant{nsid: true, idServer: true, hostnameBind: true, versionBind: true})

	n.writeConfig(identityConfig(false, false, true, true))
	log := n.reload()
	t.Logf("reload log:\n%s", log)
	checkIdentity(t, "udp", n.addr(), identityWant{nsid: false, idServer: false, hostnameBind: true, versionBind: true})
}

// TestHistogramCountsAnswersOnly: anycastd_response_seconds is "time from
// reading a query to sending its answer"; a dropped message, over UDP or
// TCP, is not observed, so the histogram's count equals the answered
// queries (TCP used to observe every message).
func TestHistogramCountsAnswersOnly(t *testing.T) {
	dir := t.TempDir()
	zf := filepath.Join(dir, "example.com.zone")
	writeFile(t, zf, zoneText("example.com.", 1))
	n := startNode(t, nodeOpts{dir: dir, metrics: true, args: func(p ports) []string {
		return []string{"-listen", p.DNSAddrs()[0].String(), "-zone", "example.com.=" + zf, "-metrics", p.MetricsAddr()}
	}})
	before := n.scrape()

	// Over TCP: a response (QR set) and a 5-byte message, both dropped, then
	// a valid query so that the connection is known to have been read.
	resp := packMsg(t, question("www.example.com.", dns.TypeA, dns.ClassINET))
	binary.BigEndian.PutUint16(resp[2:], 0x8000)
	q := question("www.example.com.", dns.TypeA, dns.ClassINET)
	c := dialTCP(t, n.addr())
	if _, err := c.Write(frame(resp, []byte{1, 2, 3, 4, 5})); err != nil {
		t.Fatal(err)
	}
	r, err := tcpQuery(c, q, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expectA(t, r, "192.0.2.80")

	after := n.scrape()
	db, _ := metricValue(before, "anycastd_dropped_total", nil)
	da, _ := metricValue(after, "anycastd_dropped_total", nil)
	if da-db != 2 {
		t.Errorf("anycastd_dropped_total rose by %v, want 2", da-db)
	}
	qb, _ := metricValue(before, "anycastd_queries_total", nil)
	qa, _ := metricValue(after, "anycastd_queries_total", nil)
	hb, ha := histogram(t, before), histogram(t, after)
	if hd := ha.GetSampleCount() - hb.GetSampleCount(); float64(hd) != qa-qb {
		t.Errorf("anycastd_response_seconds_count rose by %d, anycastd_queries_total by %v: dropped messages were timed", hd, qa-qb)
	}
}
