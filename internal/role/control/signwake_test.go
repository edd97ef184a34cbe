package control

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/store"
)

// wakeFixture is a store with a KSK+ZSK-signed zone (TTLs of seconds, as
// the lab's dnssec-rollover scenario signs), the API's backend over it and
// the signing task running on the synctest clock.
type wakeFixture struct {
	s    *store.Store
	b    backend
	p    sign.Policy
	done chan error
}

const wakeZone = "wake.example."

func startWakeFixture(t *testing.T, ctx context.Context, p sign.Policy) *wakeFixture {
	t.Helper()
	sl, err := sign.NewSealer(sign.GenerateKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), DBFile), nil, store.WithSealer(sl))
	if err != nil {
		t.Fatal(err)
	}
	rrs, err := api.ParseRecords(wakeZone, []string{"@ 5 IN SOA ns1 h 1 7200 3600 1209600 5", "@ 5 IN NS ns1", "ns1 5 IN A 192.0.2.1", "www 5 IN A 192.0.2.2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateZone(ctx, wakeZone, rrs, ""); err != nil {
		t.Fatal(err)
	}
	f := &wakeFixture{s: s, b: backend{s: s, wake: make(signingWake, 1)}, p: p, done: make(chan error, 1)}
	if _, err := f.b.EnableSigning(ctx, wakeZone, "a", p); err != nil {
		t.Fatal(err)
	}
	go func() { f.done <- runSigning(ctx, s, nil, f.b.wake, slog.New(slog.DiscardHandler)) }()
	return f
}

func (f *wakeFixture) stop(t *testing.T, cancel context.CancelFunc) {
	t.Helper()
	cancel()
	if err := <-f.done; err != nil {
		t.Error(err)
	}
	if err := f.s.Close(); err != nil {
		t.Error(err)
	}
}

func wakePolicy() sign.Policy {
	p := sign.DefaultPolicy()
	p.CSK, p.CDS = false, true
	p.DNSKEYTTL, p.ZoneMaxTTL, p.PropagationDelay = 5*time.Second, 5*time.Second, time.Second
	return p
}

// TestSigningWakesOnPolicyChange: a policy given through the API whose ZSK
// lifetime is already over starts the ZSK rollover at once, not at the
// signing task's next look (up to signingCheck later): the clock does not
// move between the PUT and the new key.
func TestSigningWakesOnPolicyChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		f := startWakeFixture(t, ctx, wakePolicy())
		defer f.stop(t, cancel)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		p := f.p
		p.ZSKLifetime = 20 * time.Second // due 14 s after the ZSK's activation
		if _, err := f.b.EnableSigning(ctx, wakeZone, "b", p); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // no time passes
		st, err := f.b.Signing(ctx, wakeZone)
		if err != nil {
			t.Fatal(err)
		}
		zsks := 0
		for _, k := range st.Keys {
			if k.Role == string(sign.ZSK) {
				zsks++
			}
		}
		if zsks != 2 {
			t.Errorf("%d ZSKs right after a policy whose ZSK lifetime is over, want 2 (the rollover started): %+v", zsks, st.Keys)
		}
	})
}

// TestSigningWakesOnDSSeen: a DS confirmed through the API (anycastctl
// dnssec ds-seen) lets the new KSK sign the DNSKEY RRset at its activation
// time, not at the signing task's next look up to signingCheck later.
func TestSigningWakesOnDSSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		p := wakePolicy()
		p.KSKLifetime = 20 * time.Second
		f := startWakeFixture(t, ctx, p)
		defer f.stop(t, cancel)
		time.Sleep(21 * time.Second) // the KSK rollover starts at 20 s
		synctest.Wait()
		st, err := f.b.Signing(ctx, wakeZone)
		if err != nil {
			t.Fatal(err)
		}
		var newKSK uint16
		for _, k := range st.Keys {
			if k.Role == string(sign.KSK) && strings.Contains(k.State, "waiting for its DS") {
				newKSK = k.Tag
			}
		}
		if newKSK == 0 {
			t.Fatalf("no KSK waiting for its DS after its predecessor's lifetime: %+v", st.Keys)
		}
		st, err = f.b.DSSeen(ctx, wakeZone, newKSK)
		if err != nil {
			t.Fatal(err)
		}
		var act time.Time
		for _, k := range st.Keys {
			if k.Tag == newKSK && k.Activate != nil {
				act = *k.Activate
			}
		}
		if act.IsZero() || time.Until(act) > 10*time.Second {
			t.Fatalf("new KSK %d activates at %v, want within 10 s of now (%v)", newKSK, act, time.Now())
		}
		time.Sleep(time.Until(act) + time.Second)
		synctest.Wait()
		z, err := f.s.Zone(ctx, wakeZone)
		if err != nil {
			t.Fatal(err)
		}
		all, err := z.RRs()
		if err != nil {
			t.Fatal(err)
		}
		var signers []uint16
		for _, rr := range all {
			if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeDNSKEY {
				signers = append(signers, sig.KeyTag)
			}
		}
		if !slices.Contains(signers, newKSK) {
			t.Errorf("1 s after the new KSK's activation the DNSKEY RRset is signed by %v, want %d among them", signers, newKSK)
		}
	})
}
