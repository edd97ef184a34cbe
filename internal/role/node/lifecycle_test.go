package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/anycastdns/anycastdns/internal/announce/bgptest"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestMain fails the tests if a goroutine outlives them, except one of
// GoBGP's: its cleanInfiniteChannel closes a channel and drains it without
// waiting, so a message still in the buffer keeps the buffer's goroutine
// blocked forever (github.com/eapache/channels) once the BGP server has
// stopped. Every goroutine of ours is joined.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"))
}

// exampleZone is the example zone of the repository.
var exampleZone, _ = filepath.Abs("../../../examples/zones/example.com.zone")

// soa asks addr for the SOA of example.com. over UDP.
func soa(addr string) error {
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeSOA)
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	r, _, err := c.Exchange(m, addr)
	if err == nil && (r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1) {
		err = fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return err
}

// readyz asks an HTTP endpoint for /readyz.
func readyz(addr string) (int, error) {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// running is a node run by a test.
type running struct {
	n       *Node
	dns     string
	metrics string
	stop    context.CancelFunc
	done    chan error
}

// runNode runs the node of the YAML document doc (with DNS, ADMIN and
// METRICS replaced by free loopback addresses) until it is ready.
func runNode(t *testing.T, doc string) *running {
	t.Helper()
	dnsAddr := testkit.FreeAddr(t)
	metricsAddr := testkit.FreeAddr(t)
	doc = strings.NewReplacer("DNS", dnsAddr,
		"ADMIN", testkit.FreeAddr(t),
		"METRICS", metricsAddr,
		"DATA", t.TempDir(), "ZONE", exampleZone).Replace(doc)
	cfg, err := config.ParseNode([]byte(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	var log testkit.Log
	n, err := New(cfg, "", slog.New(slog.NewTextHandler(&log, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{n: n, dns: dnsAddr, metrics: metricsAddr, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- n.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("node log:\n%s", log.String())
		}
	})
	select {
	case <-n.Ready():
	case err := <-r.done:
		r.done <- err
		t.Fatalf("Run before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("node not ready after 10s")
	}
	return r
}

// waitFor polls cond every 10ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestShutdownOrder runs a PoP with BGP to a router in the test, health
// checks, admin and metrics, and stops it: the prefix is withdrawn first,
// DNS still answers through the drain period, then the parts stop in the
// documented order, every goroutine ends (goleak) and Run returns nil.
func TestShutdownOrder(t *testing.T) {
	bgpPort := testkit.FreePort(t)
	const prefix = "192.0.2.53/32"
	r := runNode(t, fmt.Sprintf(`identity: {name: lifecycle}
listen: ["DNS"]
zones: [{name: example.com., file: ZONE}]
admin: {listen: "ADMIN"}
metrics: {listen: "METRICS"}
drain_period: 700ms
health: {interval: 100ms, timeout: 80ms, rise: 1, fall: 1}
bgp:
  asn: 64512
  router_id: 192.0.2.1
  listen_port: %d
  peers: [{address: 127.0.0.1, asn: 64513, passive: true}]
  announce: [{prefix: %s}]
`, bgpPort, prefix))
	lo := netip.MustParseAddr("127.0.0.1")
	router, err := bgptest.Start(bgptest.Config{ASN: 64513, RouterID: netip.MustParseAddr("192.0.2.254"), Local: lo,
		Speaker: lo, SpeakerPort: bgpPort, SpeakerASN: 64512})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	p := netip.MustParsePrefix(prefix)
	if !waitFor(15*time.Second, func() bool { return router.Has(p) }) {
		t.Fatal("the router never received the prefix")
	}
	r.stop()
	if !waitFor(500*time.Millisecond, func() bool { return !router.Has(p) }) {
		t.Fatal("the prefix is still announced 500ms into the shutdown")
	}
	if err := soa(r.dns); err != nil {
		t.Errorf("DNS during the drain period, after the withdrawal: %v", err)
	}
	// The metrics endpoint stops last: it is scraped through the drain,
	// and says the node is not ready.
	if code, err := readyz(r.metrics); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("metrics /readyz during the drain: %d, %v; want 503", code, err)
	}
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after its context ended")
	}
	want := []string{"reload", "withdraw and drain", "health+follow+dns", "tap", "levels", "bgp", "admin+metrics+load"}
	if got := r.n.runner.Stopped(); !slices.Equal(got, want) {
		t.Errorf("stop stages %v, want %v", got, want)
	}
	if err := soa(r.dns); err == nil {
		t.Error("DNS still answers after Run returned")
	}
}

// TestShutdownOrderSecondary: a node with secondary zones stops zonesync
// after DNS, and without BGP has nothing to drain.
func TestShutdownOrderSecondary(t *testing.T) {
	r := runNode(t, `identity: {name: lifecycle}
listen: ["DNS"]
data_dir: DATA
drain_period: 1h
zones:
  - {name: example.com., file: ZONE}
  - {name: example.net., primaries: [{addr: "127.0.0.1:9"}]}
metrics: {listen: "METRICS"}
`)
	start := time.Now()
	r.stop()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s: a node without BGP does not drain", d)
	}
	want := []string{"reload", "withdraw and drain", "dns", "tap", "levels", "zonesync", "metrics+load"}
	if got := r.n.runner.Stopped(); !slices.Equal(got, want) {
		t.Errorf("stop stages %v, want %v", got, want)
	}
}

// TestStartFailure: an address in use ends the start-up with the part's
// error, and nothing is left running.
func TestStartFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct{ name, doc, want string }{
		{"admin", "admin: {listen: \"" + taken.Addr().String() + "\"}\n", "admin: "},
		{"dns", "", "dns: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := testkit.FreeAddr(t)
			if tc.name == "dns" {
				listen = taken.Addr().String()
			}
			cfg, err := config.ParseNode([]byte(fmt.Sprintf("identity: {name: x}\nlisten: [%q]\n%s", listen, tc.doc)), "test")
			if err != nil {
				t.Fatal(err)
			}
			n, err := New(cfg, "", slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = n.Run(context.Background(), nil)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error starting with %q", err, tc.want)
			}
			select {
			case <-n.Ready():
				t.Error("ready after a failed start-up")
			default:
			}
		})
	}
}
