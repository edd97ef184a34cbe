//go:build cgo

package store_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/store"
)

// sealedKeys returns the keys of the store's backup, by ID, as stored.
func sealedKeys(t *testing.T, s *store.Store) map[string][]byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.Backup(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	sc := bufio.NewScanner(&b)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var line struct {
			Zone *struct {
				Signing *struct {
					Keys []struct {
						ID     string `json:"id"`
						Sealed []byte `json:"sealed"`
					} `json:"keys"`
				} `json:"signing"`
			} `json:"zone"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if line.Zone != nil && line.Zone.Signing != nil {
			for _, k := range line.Zone.Signing.Keys {
				out[k.ID] = k.Sealed
			}
		}
	}
	return out
}

func openToken(t *testing.T, label string) *sign.Token {
	t.Helper()
	tok, err := sign.OpenToken(sign.TokenConfig{Module: signtest.SoftHSMModule, Label: label, PIN: signtest.SoftHSMPIN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tok.Close() })
	return tok
}

// TestPKCS11Keys: with a PKCS#11 token, enabling signing makes the keys in
// the token and the database (and its backup) holds references without a
// private key; a ZSK rollover removes the old key from the token; the
// store opened again with the token opened again signs on; without the
// token it does not open; disabling signing, or deleting a signed zone,
// removes the keys from the token.
func TestPKCS11Keys(t *testing.T) {
	signtest.SoftHSM(t, "store")
	ctx := t.Context()
	sl, _ := sealer(t)
	tok := openToken(t, "store")
	// Five days ago, so that after the rollover's four the signatures
	// are valid now, for the external verifiers.
	c := &clock{t: time.Now().UTC().Truncate(time.Second).Add(-5 * 24 * time.Hour)}
	dir := t.TempDir()
	s := open(t, dir, store.WithSealer(sl.WithToken(tok)), store.WithClock(c.now))
	defer func() { _ = s.Close() }()
	if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
		t.Fatal(err)
	}
	p := sign.DefaultPolicy()
	p.CSK, p.ZSKLifetime, p.KSKLifetime = false, 2*24*time.Hour, 0
	p.DNSKEYTTL, p.ZoneMaxTTL, p.PropagationDelay = time.Hour, time.Hour, 5*time.Minute
	if _, err := s.EnableSigning(ctx, "example.com.", "hsm", p); err != nil {
		t.Fatal(err)
	}
	z, _ := s.Zone(ctx, "example.com.")
	signtest.Verify(t, z)
	first := sealedKeys(t, s)
	if len(first) != 2 {
		t.Fatalf("%d keys stored, want a KSK and a ZSK", len(first))
	}
	for id, sealed := range first {
		plain, err := sl.Open(sealed, "example.com. "+id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(plain), "private_pkcs8") || !strings.Contains(string(plain), `"pkcs11":{"token":"store"`) {
			t.Errorf("key %s as stored: %s", id, plain)
		}
		k, err := sl.WithToken(tok).OpenKey(sealed, "example.com.", id)
		if err != nil || !k.InToken() {
			t.Errorf("key %s does not open in the token: %v", id, err)
		}
	}

	// A ZSK rollover: the old ZSK, once out of the zone, is out of the token.
	start := c.now()
	for c.now().Before(start.Add(4 * 24 * time.Hour)) {
		next, err := s.MaintainSigning(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !next.After(c.now()) || next.Sub(c.now()) > time.Hour {
			next = c.now().Add(time.Hour)
		}
		c.set(next)
	}
	now := sealedKeys(t, s)
	gone := 0
	for id, sealed := range first {
		if _, kept := now[id]; kept {
			continue
		}
		gone++
		if _, err := sl.WithToken(tok).OpenKey(sealed, "example.com.", id); err == nil || !strings.Contains(err.Error(), "has no private key") {
			t.Errorf("key %s left the zone and is still in the token: %v", id, err)
		}
	}
	if gone != 1 {
		t.Fatalf("after 4 days: %d of the first keys gone, want the first ZSK", gone)
	}
	z, _ = s.Zone(ctx, "example.com.")
	signtest.Verify(t, z)

	// A restart: the token and the store opened again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := openBackend(t, dir, store.WithSealer(sl), store.WithClock(c.now)); !errors.Is(err, sign.ErrNoToken) {
		t.Fatalf("open without the token: %v, want ErrNoToken", err)
	}
	tok2 := openToken(t, "store")
	s = open(t, dir, store.WithSealer(sl.WithToken(tok2)), store.WithClock(c.now))
	if _, err := s.SetRRset(ctx, "example.com.", "new.example.com.", dns.TypeA, rrs(t, "new.example.com. 300 IN A 192.0.2.77")); err != nil {
		t.Fatal(err)
	}
	z, _ = s.Zone(ctx, "example.com.")
	signtest.Verify(t, z)
	all, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	signed := false
	for _, rr := range all {
		if sig, ok := rr.(*dns.RRSIG); ok && sig.Hdr.Name == "new.example.com." && sig.TypeCovered == dns.TypeA {
			signed = true
		}
	}
	if !signed {
		t.Error("the new RRset is not signed")
	}

	// Disabling signing removes the keys from the token.
	if _, err := s.DisableSigning(ctx, "example.com."); err != nil {
		t.Fatal(err)
	}
	for id, sealed := range now {
		if _, err := sl.WithToken(tok2).OpenKey(sealed, "example.com.", id); err == nil || !strings.Contains(err.Error(), "has no private key") {
			t.Errorf("key %s is still in the token after signing was disabled: %v", id, err)
		}
	}

	// Deleting a signed zone removes its keys from the token.
	if _, err := s.CreateZone(ctx, "example.net.", rrs(t, "example.net. 3600 IN SOA ns1.example.net. h.example.net. 1 7200 3600 1209600 300",
		"example.net. 3600 IN NS ns1.example.net.", "ns1.example.net. 3600 IN A 192.0.2.1"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnableSigning(ctx, "example.net.", "hsm", p); err != nil {
		t.Fatal(err)
	}
	net := sealedKeys(t, s)
	if len(net) != 2 {
		t.Fatalf("%d keys of example.net. stored", len(net))
	}
	if err := s.DeleteZone(ctx, "example.net."); err != nil {
		t.Fatal(err)
	}
	for id, sealed := range net {
		if _, err := sl.WithToken(tok2).OpenKey(sealed, "example.net.", id); err == nil || !strings.Contains(err.Error(), "has no private key") {
			t.Errorf("key %s is still in the token after its zone was deleted: %v", id, err)
		}
	}
}
