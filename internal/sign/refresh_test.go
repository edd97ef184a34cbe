package sign

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// expirations returns the expiration of every signature of z by owner and
// covered type.
func expirations(t *testing.T, z *zone.Zone, now time.Time) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	z.Nodes(func(n *zone.Node) {
		for i := range n.Sets {
			for rd := range n.Sets[i].Sigs() {
				out[zone.NameString(n.Name)+" "+dns.TypeToString[n.Sets[i].Type]] = sigTime(rd[8:12], now)
			}
		}
	})
	return out
}

func TestRefresh(t *testing.T) {
	p := DefaultPolicy() // validity 14 days, refresh 5 days, jitter 12 hours
	p.NSEC3 = true
	s := newSigner(t, p, "example.com.")
	t0 := time.Now().Truncate(time.Second)
	sz, err := s.Sign(loadZone(t, "example.com.", "testdata/example.com.zone"), t0)
	if err != nil {
		t.Fatal(err)
	}
	exps := expirations(t, sz, t0)
	lo, hi := t0.Add(p.SignatureValidity), t0
	for k, e := range exps {
		if e.After(t0.Add(p.SignatureValidity)) || e.Before(t0.Add(p.SignatureValidity-p.SignatureJitter)) {
			t.Errorf("%s expires at %v, outside validity less jitter", k, e)
		}
		lo, hi = minTime(lo, e), maxTime(hi, e)
	}
	// Jitter spreads the expirations over most of its span.
	if spread := hi.Sub(lo); spread < p.SignatureJitter*3/4 {
		t.Errorf("expirations spread over %v, want most of the jitter %v (%d signatures)", spread, p.SignatureJitter, len(exps))
	}
	next := s.NextRefresh(sz, t0)
	if want := lo.Add(-p.SignatureRefresh); !next.Equal(want) {
		t.Errorf("NextRefresh = %v, want %v", next, want)
	}
	// Before the first one is due, nothing to do.
	if _, d, a, err := s.Refresh(sz, next.Add(-time.Second)); err != nil || len(d)+len(a) != 0 {
		t.Fatalf("Refresh before due: %d deleted, %d added, %v", len(d), len(a), err)
	}
	// Half-way through the spread, about half are due, and only those
	// change.
	mid := t0.Add(p.SignatureValidity - p.SignatureRefresh - p.SignatureJitter/2)
	rz, del, add, err := s.Refresh(sz, mid)
	if err != nil {
		t.Fatal(err)
	}
	due := 0
	for _, e := range exps {
		if e.Before(mid.Add(p.SignatureRefresh)) {
			due++
		}
	}
	if len(del) != due || len(add) != due {
		t.Errorf("Refresh at mid: %d deleted, %d added, want %d each", len(del), len(add), due)
	}
	if due < len(exps)/5 || due > len(exps)*4/5 {
		t.Errorf("%d of %d due half-way through the jitter: not spread", due, len(exps))
	}
	for _, r := range del {
		if r.Type != dns.TypeRRSIG {
			t.Errorf("refresh deletes %s", r)
		}
	}
	checkSigned(t, s, rz, mid)
	after := expirations(t, rz, mid)
	for k, e := range after {
		if old := exps[k]; e.Equal(old) {
			continue
		}
		if e.Before(mid.Add(p.SignatureValidity-p.SignatureJitter)) || e.After(mid.Add(p.SignatureValidity)) {
			t.Errorf("%s refreshed to expire at %v", k, e)
		}
	}
	// The next refresh comes after the ones not yet due.
	if n := s.NextRefresh(rz, mid); !n.After(mid) {
		t.Errorf("NextRefresh after a refresh = %v, not after %v", n, mid)
	}
	// Past every expiration less the window, everything is re-signed.
	_, del, _, err = s.Refresh(rz, hi.Add(-p.SignatureRefresh).Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(del) != len(exps)-due {
		t.Errorf("late refresh re-signed %d, want the %d not refreshed before", len(del), len(exps)-due)
	}
}

// TestRefreshFollowsKeys re-signs everything a retired ZSK signed.
func TestRefreshFollowsKeys(t *testing.T) {
	p := DefaultPolicy()
	p.CSK = false
	keys := testKeys(t, "example.com.", p)
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second) // the verifiers use the clock
	s, err := New(p, "example.com.", keys)
	if err != nil {
		t.Fatal(err)
	}
	sz, err := s.Sign(loadZone(t, "example.com.", "testdata/example.com.zone"), t0)
	if err != nil {
		t.Fatal(err)
	}
	zsk2, err := GenerateKey("example.com.", ZSK, p, t0)
	if err != nil {
		t.Fatal(err)
	}
	keys[1].Retire = t0.Add(time.Hour)
	s2, err := New(p, "example.com.", append(keys, zsk2))
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(2 * time.Hour)
	// The DNSKEY RRset changes through Update (the new ZSK published).
	soa := sz.Apex.Get(dns.TypeSOA)
	old := zone.RR{Name: sz.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
	nw := old
	nw.Rdata = append([]byte(nil), old.Rdata...)
	nw.Rdata[len(nw.Rdata)-17]++
	uz, _, _, err := s2.Update(sz, []zone.RR{old}, []zone.RR{nw}, at)
	if err != nil {
		t.Fatal(err)
	}
	rz, del, _, err := s2.Refresh(uz, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(del) == 0 {
		t.Fatal("nothing re-signed after the ZSK retired")
	}
	rz.Nodes(func(n *zone.Node) {
		for i := range n.Sets {
			for rd := range n.Sets[i].Sigs() {
				if tag := uint16(rd[16])<<8 | uint16(rd[17]); tag == keys[1].Tag() {
					t.Errorf("%s %s still signed by the retired ZSK", zone.NameString(n.Name), dns.TypeToString[n.Sets[i].Type])
				}
			}
		}
	})
	checkSigned(t, s2, rz, at)
	verifyExternal(t, rz)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
