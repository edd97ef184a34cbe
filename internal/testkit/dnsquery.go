package testkit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Query asks the server at addr for name/qtype over UDP (again over TCP
// when the answer is truncated), without recursion, waiting a second.
func Query(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.Exchange(m, addr)
	}
	return r, err
}

// SOASerial is the serial the server at addr answers for zone, 0 when it
// does not answer with an SOA.
func SOASerial(addr, zone string) uint32 {
	r, err := Query(addr, zone, dns.TypeSOA)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return 0
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial
		}
	}
	return 0
}

// Metric returns the value of the sample of the Prometheus text
// exposition at url whose name and labels are sample
// (`name{label="value"}`), or -1 when there is none.
func Metric(t testing.TB, url, sample string) float64 {
	t.Helper()
	resp, err := http.Get(url) //nolint:gosec,noctx // the test's own loopback endpoint
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// ZoneUpdate is one "zone updated" line of a node's JSON log: a version
// of a zone it installed.
type ZoneUpdate struct {
	Zone     string `json:"zone"`
	Serial   uint32 `json:"serial"`
	Previous uint32 `json:"previous"`
	Source   string `json:"source"`
}

// ZoneUpdates reads the versions of zone a node installed, in order, from
// its JSON log at path.
func ZoneUpdates(t testing.TB, path, zone string) []ZoneUpdate {
	t.Helper()
	f, err := os.Open(path) //nolint:gosec // the test's own log
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []ZoneUpdate
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l struct {
			Msg string `json:"msg"`
			ZoneUpdate
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "zone updated" || l.Zone != zone {
			continue
		}
		out = append(out, l.ZoneUpdate)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return out
}
