//go:build linux

package xfrout

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/xfrout"
)

// The TSIG key shared by the server and Knot.
const (
	keyName   = "xfr-key."
	keySecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	catalog   = "catalog.invalid."
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// openStore opens a store in a temporary directory, closed when the test
// ends (after the server has stopped).
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "zones.db"), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// startServer runs the transfer server for st on 127.0.0.1, sending NOTIFY
// to notify, until the test ends.
func startServer(t *testing.T, st *store.Store, notify netip.AddrPort, withCatalog bool) netip.AddrPort {
	t.Helper()
	cfg := xfrout.Config{
		Listen:        []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Keys:          []tsig.Key{{Name: keyName, Algorithm: "hmac-sha256", Secret: keySecret}},
		AllowTransfer: []xfrout.ACL{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Key: keyName}},
		Notify:        []xfrout.NotifyTarget{{Addr: notify, Key: keyName}},
		CatalogDelay:  50 * time.Millisecond,
		NotifyBackoff: 200 * time.Millisecond,
	}
	if withCatalog {
		cfg.Catalog = catalog
	}
	s, err := xfrout.New(cfg, st, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	testkit.Start(t, s)
	return s.Addrs()[0]
}

// knot is a knotd process started by the test.
type knot struct {
	*testkit.Process
	addr   netip.AddrPort
	socket string // control socket, for knotc
}

// knotConfig is knot.conf for a secondary of primary: either of the zones
// listed, or of the catalog zone and its members.
func knotConfig(dir, dirs string, port uint16, primary netip.AddrPort, zones []string, withCatalog bool) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `server:
    listen: 127.0.0.1@%d
    rundir: %q

%skey:
  - id: %s
    algorithm: hmac-sha256
    secret: %s

remote:
  - id: primary
    address: %s@%d
    key: %s

acl:
  - id: notify_from_primary
    address: 127.0.0.1
    key: %s
    action: notify
  - id: transfer_local
    address: 127.0.0.1
    action: transfer

template:
  - id: default
    storage: %q
    master: primary
    acl: [notify_from_primary, transfer_local]
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
    semantic-checks: on
`, port, filepath.Join(dir, "run"), dirs,
		strings.TrimSuffix(keyName, "."), keySecret,
		primary.Addr(), primary.Port(), strings.TrimSuffix(keyName, "."), strings.TrimSuffix(keyName, "."),
		filepath.Join(dir, "zones"))
	b.WriteString("\nzone:\n")
	for _, z := range zones {
		fmt.Fprintf(&b, "  - domain: %s\n", z)
	}
	if withCatalog {
		fmt.Fprintf(&b, "  - domain: %s\n    catalog-role: interpret\n    catalog-template: default\n", catalog)
	}
	return b.String()
}

// startKnot starts knotd on port as a secondary of primary. It is stopped
// (SIGTERM) when the test ends, and its log printed if the test failed.
func startKnot(t *testing.T, port uint16, primary netip.AddrPort, zones []string, withCatalog bool) *knot {
	t.Helper()
	knotd := testkit.RequireTool(t, "knotd", "knot")
	dir := filepath.Join(t.TempDir(), "knot")
	if err := os.MkdirAll(filepath.Join(dir, "zones"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(conf, []byte(knotConfig(dir, testkit.KnotDirs(t, dir), port, primary, zones, withCatalog)), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &knot{
		Process: testkit.StartProcess(t, "knotd", filepath.Join(dir, "knotd.log"), knotd, "-c", conf),
		addr:    netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		socket:  filepath.Join(dir, "run", "knot.sock"),
	}
	return k
}

// one of words.
func (k *knot) logLines(zone string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(k.Log(), "\n") {
		if !strings.Contains(l, "["+zone+"]") {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// soa asks Knot for the SOA of zone over UDP: the serial, or ok=false when
// Knot does not serve the zone (yet).
func (k *knot) soa(zone string) (serial uint32, ok bool) {
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeSOA)
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	r, _, err := c.Exchange(q, k.addr.String())
	if err != nil || r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		return 0, false
	}
	soa, isSOA := r.Answer[0].(*dns.SOA)
	if !isSOA {
		return 0, false
	}
	return soa.Serial, true
}

// waitSerial waits until Knot serves zone at serial.
func (k *knot) waitSerial(t *testing.T, zone string, serial uint32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, ok := k.soa(zone)
		if ok && got == serial {
			return
		}
		if k.Exited() {
			t.Fatalf("knotd exited while waiting for %s serial %d", zone, serial)
		}
		if time.Now().After(deadline) {
			t.Fatalf("knotd serves %s at serial %d (served: %t) 30s later, want %d", zone, got, ok, serial)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until Knot no longer serves zone.
func (k *knot) waitGone(t *testing.T, zone string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := k.soa(zone); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("knotd still serves %s 30s later", zone)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// axfr transfers zone from Knot and returns its records, closing SOA
// excluded, in presentation form, sorted.
func (k *knot) axfr(t *testing.T, zone string) []string {
	t.Helper()
	q := new(dns.Msg)
	q.SetAxfr(zone)
	tr := &dns.Transfer{DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	ch, err := tr.In(q, k.addr.String())
	if err != nil {
		t.Fatalf("axfr %s from knotd: %v", zone, err)
	}
	var rrs []dns.RR
	for env := range ch {
		if env.Error != nil {
			t.Fatalf("axfr %s from knotd: %v", zone, env.Error)
		}
		rrs = append(rrs, env.RR...)
	}
	if len(rrs) < 2 {
		t.Fatalf("axfr %s from knotd: %d records", zone, len(rrs))
	}
	return rrStrings(rrs[:len(rrs)-1])
}

// storeRecords returns the current content of zone in the store, in the
// form of axfr.
func storeRecords(t *testing.T, st *store.Store, zone string) ([]string, uint32) {
	t.Helper()
	z, err := st.Zone(t.Context(), zone)
	if err != nil {
		t.Fatal(err)
	}
	rrs, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	return rrStrings(rrs), z.Serial
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = strings.ReplaceAll(rr.String(), "\t", " ")
	}
	slices.Sort(out)
	return out
}

func netipAddrPort(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

// control runs knotc against this knotd.
func (k *knot) control(t *testing.T, args ...string) {
	t.Helper()
	knotc, err := testkit.LookTool("knotc")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(knotc, append([]string{"-s", k.socket, "-t", "10"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("knotc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
