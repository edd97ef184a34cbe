package xfr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

const (
	zoneName = "example.com."
	keyName  = "xfr-key."
	secret   = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
)

// knot is a knotd started by the test.
type knot struct {
	*testkit.Process
	t      *testing.T
	addr   netip.AddrPort
	knotc  string
	socket string
}

// startKnot runs knotd as the primary of example.com. with TSIG, NOTIFY to
// notifyTo and a journal of changes, so that it answers IXFR.
func startKnot(t *testing.T, notifyTo netip.AddrPort) *knot {
	t.Helper()
	knotd := testkit.RequireTool(t, "knotd", "knot")
	knotc := testkit.RequireTool(t, "knotc", "knot")
	dir := t.TempDir()
	dirs := testkit.KnotDirs(t, dir)
	if err := os.MkdirAll(filepath.Join(dir, "zones"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "zones", "example.com.zone"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	port := testkit.FreePort(t)
	k := &knot{
		t: t, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		knotc: knotc, socket: filepath.Join(dir, "run", "knot.sock"),
	}
	conf := fmt.Sprintf(`server:
    listen: 127.0.0.1@%d
    rundir: %q
%skey:
  - id: %s
    algorithm: hmac-sha256
    secret: %s
remote:
  - id: secondary
    address: %s@%d
    key: %s
acl:
  - id: transfer
    address: 127.0.0.1
    key: %s
    action: transfer
template:
  - id: default
    storage: %q
    semantic-checks: on
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
    serial-policy: increment
zone:
  - domain: %s
    file: example.com.zone
    notify: secondary
    acl: transfer
`, port, filepath.Join(dir, "run"), dirs,
		keyName, secret, notifyTo.Addr(), notifyTo.Port(), keyName, keyName, filepath.Join(dir, "zones"), zoneName)
	confPath := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Process = testkit.StartProcess(t, "knotd", filepath.Join(dir, "knotd.log"), knotd, "-c", confPath)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := k.axfr(); err == nil {
			return k
		} else if time.Now().After(deadline) {
			t.Fatalf("knotd not serving after 20s: %v", err)
		}
		select {
		case <-k.Done():
			t.Fatalf("knotd exited:\n%s", k.Log())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// control runs knotc against this knotd.
func (k *knot) control(args ...string) {
	k.t.Helper()
	out, err := exec.Command(k.knotc, append([]string{"-s", k.socket}, args...)...).CombinedOutput()
	if err != nil {
		k.t.Fatalf("knotc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// change applies one transaction of knotc zone-set/zone-unset commands
// ("set OWNER TTL TYPE RDATA" or "unset OWNER [TYPE [RDATA]]"); Knot bumps
// the serial, keeps the change in its journal and sends NOTIFY.
func (k *knot) change(ops ...string) {
	k.t.Helper()
	k.control("zone-begin", zoneName)
	for _, op := range ops {
		verb, rest, _ := strings.Cut(op, " ")
		k.control(append([]string{"zone-" + verb, zoneName}, strings.Fields(rest)...)...)
	}
	k.control("zone-commit", zoneName)
}

// axfr transfers the zone from Knot with TSIG.
func (k *knot) axfr() ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetAxfr(zoneName)
	m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{keyName: secret}}
	env, err := tr.In(m, k.addr.String())
	if err != nil {
		return nil, err
	}
	var out []dns.RR
	for e := range env {
		if e.Error != nil {
			return nil, e.Error
		}
		out = append(out, e.RR...)
	}
	if len(out) < 2 {
		return nil, errors.New("short AXFR")
	}
	return out[:len(out)-1], nil // without the closing SOA
}

// canonical prints records one per line, sorted, names in lower case.
func canonical(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = strings.ToLower(c.Header().Name)
		out = append(out, c.String())
	}
	slices.Sort(out)
	return out
}

// secondary is the node side: a zonesync.Manager whose zones a real
// dnsserver serves, with NOTIFY wired in, as the node role does it.
type secondary struct {
	m       *zonesync.Manager
	h       *dnsserver.Handler
	addr    netip.AddrPort
	reg     *prometheus.Registry
	changed chan struct{}
	stop    func() // stops the manager and the server, waiting for both
}

func startSecondary(t *testing.T, addr, primary netip.AddrPort, dataDir string) *secondary {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m, err := zonesync.New(zonesync.Config{
		DataDir: dataDir,
		Keys:    []tsig.Key{{Name: keyName, Algorithm: "hmac-sha256", Secret: secret}},
		Zones:   []zonesync.Zone{{Name: zoneName, Primaries: []zonesync.Primary{{Addr: primary, Key: keyName}}}},
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	h := dnsserver.NewHandler(dnsserver.Settings{MaxUDP: 1232}, nil)
	h.SetNotify(m.Notify)
	s := &secondary{m: m, h: h, addr: addr, reg: prometheus.NewRegistry(), changed: make(chan struct{}, 100)}
	s.reg.MustRegister(m.Collectors()...)
	swap := func() { h.SetZones(zone.NewSet(m.Zones()...)) }
	swap()
	m.OnChange(func() {
		swap()
		s.changed <- struct{}{}
	})
	srv, err := dnsserver.New(dnsserver.Config{Listen: []netip.AddrPort{addr}, Readers: 1}, h, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srvDone, mDone := make(chan error, 1), make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx) }()
	go func() { mDone <- m.Run(ctx) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-mDone; err != nil {
				t.Errorf("manager: %v", err)
			}
			if err := <-srvDone; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("dns server: %v", err)
			}
		})
	}
	t.Cleanup(s.stop)
	select {
	case <-srv.Ready():
	case err := <-srvDone:
		t.Fatalf("dns server: %v", err)
	}
	return s
}

// waitSerial waits until the served zone has serial want.
func (s *secondary) waitSerial(t *testing.T, want uint32) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		if z := s.h.Zones().Get(zoneName); z != nil && z.Serial == want {
			return
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("serial %d not served after 30s; status %+v", want, s.m.Status())
		}
	}
}

// metric returns the value of a zonesync counter with the given labels.
func (s *secondary) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// query asks a server over UDP.
func query(t *testing.T, addr netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	if err != nil {
		t.Fatalf("query %s %s at %s: %v", name, dns.TypeToString[qtype], addr, err)
	}
	return r
}

// compare checks that the secondary serves exactly what Knot has: the same
// records (Knot's AXFR against the served snapshot) and the same answers
// to a few queries.
func compare(t *testing.T, k *knot, s *secondary, probes [][2]string) {
	t.Helper()
	want, err := k.axfr()
	if err != nil {
		t.Fatalf("axfr from knot: %v", err)
	}
	z := s.h.Zones().Get(zoneName)
	if z == nil {
		t.Fatal("zone not served")
	}
	got, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(canonical(want), canonical(got)); diff != "" {
		t.Fatalf("served zone differs from Knot's (-knot +served):\n%s", diff)
	}
	for _, p := range probes {
		qt := dns.StringToType[p[1]]
		kr, sr := query(t, k.addr, p[0], qt), query(t, s.addr, p[0], qt)
		if kr.Rcode != sr.Rcode || !slices.Equal(canonical(kr.Answer), canonical(sr.Answer)) {
			t.Errorf("%s %s: knot %s %v, secondary %s %v", p[0], p[1],
				dns.RcodeToString[kr.Rcode], canonical(kr.Answer), dns.RcodeToString[sr.Rcode], canonical(sr.Answer))
		}
	}
}

// TestKnotPrimary: the secondary AXFRs the zone from Knot at start; each
// change made on Knot arrives by NOTIFY and IXFR (no refresh timer could
// fire: the SOA refresh is an hour) and the served zone equals Knot's.
func TestKnotPrimary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts knotd")
	}
	ourAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), testkit.FreePort(t))
	k := startKnot(t, ourAddr)
	dataDir := t.TempDir()
	s := startSecondary(t, ourAddr, k.addr, dataDir)
	probes := [][2]string{{"www.example.com.", "A"}, {"new.example.com.", "A"}, {"old.example.com.", "TXT"}, {"x.wild.example.com.", "A"}}

	s.waitSerial(t, 1)
	compare(t, k, s, probes)
	axfrs := s.metric(t, "anycastd_zonesync_transfers_total", map[string]string{"type": "axfr", "result": "ok"})

	k.change("set new 300 A 192.0.2.77", "unset old TXT", "set www 300 A 192.0.2.81", "unset www A 192.0.2.80")
	s.waitSerial(t, 2)
	compare(t, k, s, probes)

	// A larger change: the IXFR spans several messages, each signed.
	var ops []string
	for i := range 300 {
		// 300 records of ~250 octets: more than one 64 KiB message.
		ops = append(ops, fmt.Sprintf("set bulk%03d 300 TXT \"%03d%s\"", i, i, strings.Repeat("x", 240)))
	}
	k.change(ops...)
	s.waitSerial(t, 3)
	compare(t, k, s, probes)

	// Changes in quick succession: one NOTIFY or several, then IXFR across
	// all of them.
	k.change("set burst1 60 AAAA 2001:db8::1")
	k.change("set burst2 60 AAAA 2001:db8::2", "unset new A")
	k.change("set mail 600 A 192.0.2.26", "unset mail A 192.0.2.25")
	s.waitSerial(t, 6)
	compare(t, k, s, probes)

	ixfrs := s.metric(t, "anycastd_zonesync_transfers_total", map[string]string{"type": "ixfr", "result": "ok"})
	notifies := s.metric(t, "anycastd_zonesync_notifies_total", map[string]string{"result": "accepted"})
	after := s.metric(t, "anycastd_zonesync_transfers_total", map[string]string{"type": "axfr", "result": "ok"})
	t.Logf("transfers: %v AXFR at start, %v IXFR, %v AXFR since; %v NOTIFY accepted", axfrs, ixfrs, after-axfrs, notifies)
	if axfrs != 1 || after != axfrs || ixfrs < 3 || notifies < 3 {
		t.Errorf("want 1 AXFR then IXFR only (at least 3) driven by NOTIFY (at least 3 accepted); got %v AXFR, %v IXFR, %v AXFR after, %v NOTIFY", axfrs, ixfrs, after-axfrs, notifies)
	}
	for _, st := range s.m.Status() {
		if st.LastError != "" || st.Expired || st.Primary != k.addr.String() {
			t.Errorf("status %+v", st)
		}
	}

	// The persisted copy is the served version once the manager has
	// stopped (a version is served first, then written).
	s.stop()
	z, err := zone.Load(zoneName, zonesync.ZoneFile(dataDir, zoneName))
	if err != nil {
		t.Fatal(err)
	}
	if z.Serial != 6 {
		t.Errorf("persisted serial %d, want 6", z.Serial)
	}
}
