package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func writeKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, sign.GenerateKeyFile(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDNSSECThroughTheAPI: a control plane with a key file and a policy of
// its configuration signs a zone on PUT /v1/zones/{zone}/dnssec, keeps it
// signed through API edits, shows its keys and next event, and refuses a
// policy it does not have; without a key file, enabling is 409.
func TestDNSSECThroughTheAPI(t *testing.T) {
	cfg := testConfig(t)
	cfg.Signing.KeyFile = writeKeyFile(t)
	yes, no := true, false
	cfg.Signing.Policies = map[string]config.SigningPolicy{"nsec3": {NSEC3: &yes, CSK: &no}}
	iter := 3
	bad := *cfg
	bad.Signing.Policies = map[string]config.SigningPolicy{"slow": {NSEC3: &yes, NSEC3Iterations: &iter}}
	if _, err := New(&bad, nil); err == nil || !strings.Contains(err.Error(), "signing.policies.slow: nsec3_iterations") {
		t.Errorf("New with a bad policy: %v", err)
	}
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, nil) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-c.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	cl, err := apiclient.New("http://"+c.APIAddr().String(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateZone(ctx, api.CreateZone{Name: "example.com", Records: zoneRecords}); err != nil {
		t.Fatal(err)
	}
	st, err := cl.DNSSEC(ctx, "example.com")
	if err != nil || st.Enabled {
		t.Fatalf("status before: %+v %v", st, err)
	}
	var ae *apiclient.Error
	if _, err := cl.SetDNSSEC(ctx, "example.com", api.PutDNSSEC{Enabled: true, Policy: "nope"}); !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown policy: %v, want 400", err)
	}
	st, err = cl.SetDNSSEC(ctx, "example.com", api.PutDNSSEC{Enabled: true, Policy: "nsec3"})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.Policy != "nsec3" || len(st.Keys) != 2 || st.NextEvent == nil || st.Settings == nil || !st.Settings.NSEC3 {
		t.Fatalf("status after enable: %+v", st)
	}
	for i, name := range []string{"a", "b", "www"} {
		if _, err := cl.PutRRset(ctx, "example.com", name, "A", api.PutRRset{Records: []string{"192.0.2." + string(rune('1'+i))}}, ""); err != nil {
			t.Fatalf("edit %s: %v", name, err)
		}
		z, err := c.Store().Zone(ctx, "example.com.")
		if err != nil {
			t.Fatal(err)
		}
		if z.NSEC3 == nil {
			t.Fatal("not NSEC3-signed")
		}
		signtest.Verify(t, z)
	}
	if _, err := cl.SetDNSSEC(ctx, "example.com", api.PutDNSSEC{Enabled: true, Settings: []byte(`{"nsec3_iterations": 5}`)}); !errors.As(err, &ae) || ae.StatusCode != http.StatusBadRequest || !strings.Contains(ae.Message, "nsec3_iterations") {
		t.Errorf("bad custom settings: %v, want 400 naming nsec3_iterations", err)
	}
	st, err = cl.SetDNSSEC(ctx, "example.com", api.PutDNSSEC{Enabled: false})
	if err != nil || st.Enabled {
		t.Fatalf("disable: %+v %v", st, err)
	}
	if z, _ := c.Store().Zone(ctx, "example.com."); z.Signed {
		t.Error("signed after disable")
	}
}

// TestSigningTask: the control role's signing task refreshes the
// signatures of a signed zone before they expire, spread over time: over
// 40 days of a fake clock (testing/synctest) the zone's signatures are
// valid at every check and its serial moved on in several writes.
func TestSigningTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		sl, err := sign.NewSealer(sign.GenerateKeyFile())
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(ctx, filepath.Join(t.TempDir(), DBFile), nil, store.WithSealer(sl))
		if err != nil {
			t.Fatal(err)
		}
		rrs, err := api.ParseRecords("example.com.", zoneRecords)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateZone(ctx, "example.com.", rrs, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EnableSigning(ctx, "example.com.", "default", sign.DefaultPolicy()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- runSigning(ctx, s, nil, nil, slog.New(slog.DiscardHandler)) }()
		z0, _ := s.Zone(ctx, "example.com.")
		serials := map[uint32]bool{}
		for range 40 * 24 {
			time.Sleep(time.Hour)
			synctest.Wait()
			z, err := s.Zone(ctx, "example.com.")
			if err != nil {
				t.Fatal(err)
			}
			serials[z.Serial] = true
			if err := sigsValid(z, time.Now()); err != nil {
				t.Fatalf("at %v: %v", time.Now(), err)
			}
		}
		if len(serials) < 4 {
			t.Errorf("%d versions in 40 days from serial %d: the signatures were not refreshed in batches", len(serials), z0.Serial)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

// sigsValid checks that every signature of z verifies and is valid at now.
func sigsValid(z *zone.Zone, now time.Time) error {
	all, err := z.RRs()
	if err != nil {
		return err
	}
	keys := map[uint16]*dns.DNSKEY{}
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range all {
		switch v := rr.(type) {
		case *dns.DNSKEY:
			keys[v.KeyTag()] = v
		case *dns.RRSIG:
			sigs = append(sigs, v)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + " " + dns.TypeToString[rr.Header().Rrtype]
		sets[k] = append(sets[k], rr)
	}
	if len(sigs) == 0 {
		return errors.New("no signatures")
	}
	for _, sig := range sigs {
		k := strings.ToLower(sig.Hdr.Name) + " " + dns.TypeToString[sig.TypeCovered]
		key := keys[sig.KeyTag]
		if key == nil {
			return errors.New(k + ": signed by a key not in the DNSKEY RRset")
		}
		if err := sig.Verify(key, sets[k]); err != nil {
			return errors.New(k + ": " + err.Error())
		}
		if !sig.ValidityPeriod(now) {
			return errors.New(k + ": signature not valid now")
		}
	}
	return nil
}

// TestParentDSCheck: a KSK rollover waits for the new DS at the parent; the
// signing task's check of the parent's servers (a DNS server on loopback
// standing for them) does not take a DS set with the old key alone, and
// takes one with both keys: the new key then has its activation time.
func TestParentDSCheck(t *testing.T) {
	ctx := t.Context()
	var mu sync.Mutex
	var parentDS []dns.RR
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		mu.Lock()
		if r.Question[0].Qtype == dns.TypeDS {
			m.Answer = append(m.Answer, parentDS...)
		}
		mu.Unlock()
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	defer func() { _ = srv.Shutdown() }()
	parents := map[string][]netip.AddrPort{"example.": {netip.MustParseAddrPort(pc.LocalAddr().String())}, "org.": nil}

	now := time.Now()
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	sl, err := sign.NewSealer(sign.GenerateKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), DBFile), nil, store.WithSealer(sl), store.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rrs, err := api.ParseRecords("child.example.", []string{"@ 3600 IN SOA ns1 h 1 7200 3600 1209600 300", "@ 3600 IN NS ns1", "ns1 300 IN A 192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateZone(ctx, "child.example.", rrs, ""); err != nil {
		t.Fatal(err)
	}
	p := sign.DefaultPolicy()
	p.DNSKEYTTL, p.ZoneMaxTTL, p.KSKLifetime, p.CDS = time.Hour, time.Hour, 2*time.Hour, true
	st, err := s.EnableSigning(ctx, "child.example.", "roll", p)
	if err != nil {
		t.Fatal(err)
	}
	old, err := dns.NewRR(st.Keys[0].DS)
	if err != nil {
		t.Fatal(err)
	}
	clockMu.Lock()
	now = now.Add(3 * time.Hour)
	clockMu.Unlock()
	if _, err := s.MaintainSigning(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := s.WaitingForDS(ctx)
	if err != nil || len(w) != 1 {
		t.Fatalf("waiting after the rollover started: %v %v", w, err)
	}
	log := slog.New(slog.DiscardHandler)
	mu.Lock()
	parentDS = []dns.RR{old}
	mu.Unlock()
	checkParents(ctx, s, parents, log)
	if w2, _ := s.WaitingForDS(ctx); len(w2) != 1 {
		t.Fatalf("the parent has only the old DS, yet the key no longer waits: %v", w2)
	}
	st, err = s.Signing(ctx, "child.example.")
	if err != nil {
		t.Fatal(err)
	}
	var newDS dns.RR
	for _, k := range st.Keys {
		if k.Tag == w[0].Tag {
			if newDS, err = dns.NewRR(k.DS); err != nil {
				t.Fatal(err)
			}
		}
	}
	mu.Lock()
	parentDS = []dns.RR{old, newDS}
	mu.Unlock()
	checkParents(ctx, s, parents, log)
	if w3, _ := s.WaitingForDS(ctx); len(w3) != 0 {
		t.Fatalf("the parent has both DS, yet the key still waits: %v", w3)
	}
	st, _ = s.Signing(ctx, "child.example.")
	for _, k := range st.Keys {
		if k.Tag == w[0].Tag && (k.Activate.IsZero() || !k.Activate.After(clock())) {
			t.Errorf("new key after its DS was seen: %+v", k)
		}
	}
	if name, servers := parentOf(parents, "a.b.example."); name != "example." || len(servers) != 1 {
		t.Errorf("parentOf(a.b.example.) = %q %v", name, servers)
	}
	if name, _ := parentOf(parents, "example."); name != "" {
		t.Errorf("parentOf(example.) = %q, want none (a zone is not its own parent)", name)
	}
}

// TestRolloverTask: the control role's signing task, on a testing/synctest
// clock, runs whole ZSK (pre-publish) and KSK (double-DS) rollovers over
// eight days, the test playing the parent (its DS RRset follows the zone's
// CDS) and the operator (ds-seen once the parent has the new DS). Every
// hour every signature verifies and is valid, the DNSKEY RRset is signed
// by a key whose DS the parent publishes, and ldns-verify-zone, at the
// bubble's time with the parent's DS as trust anchor, accepts every new
// version.
func TestRolloverTask(t *testing.T) {
	ldns := testkit.RequireTool(t, "ldns-verify-zone", "ldnsutils")
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		sl, err := sign.NewSealer(sign.GenerateKeyFile())
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(ctx, filepath.Join(t.TempDir(), DBFile), nil, store.WithSealer(sl))
		if err != nil {
			t.Fatal(err)
		}
		rrs, err := api.ParseRecords("example.com.", []string{"@ 3600 IN SOA ns1 h 1 7200 3600 1209600 300", "@ 3600 IN NS ns1",
			"ns1 3600 IN A 192.0.2.1", "www 300 IN A 192.0.2.2", "sub 3600 IN NS ns.sub", "ns.sub 3600 IN A 192.0.2.3"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateZone(ctx, "example.com.", rrs, ""); err != nil {
			t.Fatal(err)
		}
		p := sign.DefaultPolicy()
		p.CSK, p.CDS = false, true
		p.DNSKEYTTL, p.ZoneMaxTTL = time.Hour, time.Hour
		p.SignatureValidity, p.SignatureRefresh, p.SignatureJitter = 4*24*time.Hour, 26*time.Hour, time.Hour
		p.ZSKLifetime, p.KSKLifetime = 2*24*time.Hour, 3*24*time.Hour
		if _, err := s.EnableSigning(ctx, "example.com.", "roll", p); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- runSigning(ctx, s, nil, nil, slog.New(slog.DiscardHandler)) }()
		cdsOf := func(z *zone.Zone) []string {
			all, err := z.RRs()
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, rr := range all {
				if c, ok := rr.(*dns.CDS); ok {
					out = append(out, fmt.Sprintf("%d %d %d %s", c.KeyTag, c.Algorithm, c.DigestType, strings.ToUpper(c.Digest)))
				}
			}
			slices.Sort(out)
			return out
		}
		z, _ := s.Zone(ctx, "example.com.")
		parent := cdsOf(z)
		lastSerial := z.Serial
		keys, dsChanges, confirmed, checked := map[uint16]bool{}, 0, 0, 0
		for range 8 * 24 {
			time.Sleep(time.Hour)
			synctest.Wait()
			now := time.Now()
			z, err := s.Zone(ctx, "example.com.")
			if err != nil {
				t.Fatal(err)
			}
			if cds := cdsOf(z); !slices.Equal(cds, parent) {
				parent, dsChanges = cds, dsChanges+1
				st, err := s.Signing(ctx, "example.com.")
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range st.Keys {
					if strings.Contains(k.State, "waiting for its DS") {
						if _, err := s.DSSeen(ctx, "example.com.", k.Tag); err != nil {
							t.Fatal(err)
						}
						confirmed++
					}
				}
			}
			if err := sigsValid(z, now); err != nil {
				t.Fatalf("at %v: %v", now, err)
			}
			if err := dnskeyAnchored(z, parent); err != nil {
				t.Fatalf("at %v: %v", now, err)
			}
			for _, k := range zoneKeys(t, z) {
				keys[k] = true
			}
			if z.Serial != lastSerial {
				lastSerial = z.Serial
				dir := t.TempDir()
				var anchors strings.Builder
				for _, d := range parent {
					anchors.WriteString("example.com. 3600 IN DS " + d + "\n")
				}
				if err := os.WriteFile(filepath.Join(dir, "ds"), []byte(anchors.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "zone"), []byte(zoneText(t, z)), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(ldns, "-V", "1", "-t", now.UTC().Format("20060102150405"), "-k", filepath.Join(dir, "ds"), filepath.Join(dir, "zone")).CombinedOutput()
				if err != nil {
					t.Fatalf("at %v: ldns-verify-zone: %v\n%s", now, err, out)
				}
				checked++
			}
		}
		t.Logf("8 days: %d versions checked by ldns-verify-zone, %d DS confirmed, %d keys, %d DS changes at the parent", checked, confirmed, len(keys), dsChanges)
		// Two KSKs and four ZSKs at least: each rollover made a key.
		if confirmed < 2 || len(keys) < 6 || dsChanges < 4 {
			t.Errorf("in 8 days: %d DS confirmed, %d keys, %d DS changes at the parent", confirmed, len(keys), dsChanges)
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
}

// zoneKeys returns the tags of the zone's DNSKEY RRset.
func zoneKeys(t *testing.T, z *zone.Zone) []uint16 {
	t.Helper()
	all, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	var out []uint16
	for _, rr := range all {
		if k, ok := rr.(*dns.DNSKEY); ok {
			out = append(out, k.KeyTag())
		}
	}
	return out
}

// dnskeyAnchored checks that the DNSKEY RRset of z is signed by a key whose
// DS is in ds ("tag alg type digest").
func dnskeyAnchored(z *zone.Zone, ds []string) error {
	all, err := z.RRs()
	if err != nil {
		return err
	}
	keys := map[uint16]*dns.DNSKEY{}
	var set []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range all {
		switch v := rr.(type) {
		case *dns.DNSKEY:
			keys[v.KeyTag()] = v
			set = append(set, v)
		case *dns.RRSIG:
			if v.TypeCovered == dns.TypeDNSKEY {
				sigs = append(sigs, v)
			}
		}
	}
	for _, sig := range sigs {
		k := keys[sig.KeyTag]
		if k == nil || sig.Verify(k, set) != nil {
			continue
		}
		d := k.ToDS(dns.SHA256)
		if slices.Contains(ds, fmt.Sprintf("%d %d %d %s", d.KeyTag, d.Algorithm, d.DigestType, strings.ToUpper(d.Digest))) {
			return nil
		}
	}
	return fmt.Errorf("the DNSKEY RRset is not signed by a key with a DS in the parent's set %v", ds)
}
