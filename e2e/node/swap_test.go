//go:build linux

package node

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// swapZone is version v of a zone in which a reload changes, together, the
// SOA serial, the target of check.example.com.'s CNAME and the TXT at that
// target. Each answer for check.example.com. TXT shows two of them (the
// CNAME and the TXT it leads to); a half-applied zone would show a CNAME to
// a name that does not exist, or one that holds another version's text.
func swapZone(v uint32) string {
	return zoneText("example.com.", v,
		fmt.Sprintf("check IN CNAME v%d", v),
		fmt.Sprintf("v%d IN TXT \"serial=%d\"", v, v),
	)
}

// versionOf reads the version from an answer for check.example.com. TXT
// and checks that the CNAME and the TXT agree.
func versionOf(r *dns.Msg) (uint32, error) {
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		return 0, fmt.Errorf("rcode %s answer %q, want NOERROR with CNAME and TXT", dns.RcodeToString[r.Rcode], rrStrings(r.Answer))
	}
	cname, ok1 := r.Answer[0].(*dns.CNAME)
	txt, ok2 := r.Answer[1].(*dns.TXT)
	if !ok1 || !ok2 || len(txt.Txt) != 1 {
		return 0, fmt.Errorf("answer %q, want CNAME then one TXT string", rrStrings(r.Answer))
	}
	label, _, _ := strings.Cut(cname.Target, ".")
	cv, err := strconv.ParseUint(strings.TrimPrefix(label, "v"), 10, 32)
	if err != nil || !strings.HasPrefix(label, "v") || txt.Hdr.Name != cname.Target {
		return 0, fmt.Errorf("answer %q: CNAME target and TXT owner do not match", rrStrings(r.Answer))
	}
	tv, err := strconv.ParseUint(strings.TrimPrefix(txt.Txt[0], "serial="), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("answer %q: TXT is not serial=N", rrStrings(r.Answer))
	}
	if cv != tv {
		return 0, fmt.Errorf("half-applied zone: CNAME to version %d, TXT of version %d: %q", cv, tv, rrStrings(r.Answer))
	}
	return uint32(cv), nil
}

// TestAtomicSwap hammers the node with queries from two clients (UDP and
// TCP) while reloads change the zone: every answer must be consistent, no
// query may fail, and each client must never see an older version after a
// newer one (its queries are sequential).
func TestAtomicSwap(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "example.com.zone")
	writeFile(t, file, swapZone(1))
	n := startNode(t, nodeOpts{dir: dir, config: `identity: {name: swap-node}
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
`})

	const hammer = 2 * time.Second
	stop := make(chan struct{})
	type result struct {
		queries  int
		versions map[uint32]bool
		errs     []string
	}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i, network := range []string{"udp", "tcp"} {
		wg.Go(func() {
			res := &results[i]
			res.versions = map[uint32]bool{}
			fail := func(format string, args ...any) {
				if len(res.errs) < 10 {
					res.errs = append(res.errs, fmt.Sprintf(network+": "+format, args...))
				}
			}
			c := &dns.Client{Net: network, Timeout: 3 * time.Second}
			var conn *dns.Conn
			var err error
			if network == "tcp" {
				// One connection for all queries, as a resolver would.
				conn, err = c.Dial(n.addr().String())
				if err != nil {
					fail("dial: %v", err)
					return
				}
				defer conn.Close()
			}
			var last uint32
			for q := 0; ; q++ {
				select {
				case <-stop:
					return
				default:
				}
				m := question("check.example.com.", dns.TypeTXT, dns.ClassINET)
				if q%2 == 1 {
					m = question("example.com.", dns.TypeSOA, dns.ClassINET)
				}
				var r *dns.Msg
				if conn != nil {
					r, _, err = c.ExchangeWithConn(m, conn)
				} else {
					r, _, err = c.Exchange(m, n.addr().String())
				}
				res.queries++
				if err != nil {
					var ne net.Error
					fail("query %d (%s): %v (timeout %t)", q, m.Question[0].Name, err, errors.As(err, &ne) && ne.Timeout())
					if conn != nil {
						return
					}
					continue
				}
				var v uint32
				if q%2 == 1 {
					if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
						fail("SOA query %d: rcode %s answer %q", q, dns.RcodeToString[r.Rcode], rrStrings(r.Answer))
						continue
					}
					soa, ok := r.Answer[0].(*dns.SOA)
					if !ok {
						fail("SOA query %d: answer %q", q, rrStrings(r.Answer))
						continue
					}
					v = soa.Serial
				} else if v, err = versionOf(r); err != nil {
					fail("query %d: %v", q, err)
					continue
				}
				if v < last {
					fail("query %d: version %d after version %d: an old zone came back", q, v, last)
				}
				last = v
				res.versions[v] = true
			}
		})
	}

	// Reload as often as the node finishes reloads, for the whole time.
	v := uint32(1)
	deadline := time.Now().Add(hammer)
	for time.Now().Before(deadline) && !n.exited() {
		v++
		writeFile(t, file, swapZone(v))
		n.reload()
		time.Sleep(20 * time.Millisecond)
	}
	// A final moment for the clients to see the last version.
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	for i, res := range results {
		for _, e := range res.errs {
			t.Error(e)
		}
		t.Logf("client %d: %d queries, %d versions seen; %d reloads", i, res.queries, len(res.versions), v-1)
		if len(res.versions) < 2 {
			t.Errorf("client %d saw %d versions over %d reloads: the test did not overlap queries with reloads", i, len(res.versions), v-1)
		}
		if !res.versions[v] {
			t.Errorf("client %d never saw the last version %d", i, v)
		}
	}
}
