package sign

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func policyFor(alg Algorithm) Policy {
	p := DefaultPolicy()
	p.Algorithm = alg
	return p
}

// TestKeyMatchesMiekg checks the DNSKEY, key tag and DS of each algorithm
// against miekg/dns's own encoding of the same public key.
func TestKeyMatchesMiekg(t *testing.T) {
	for _, alg := range []Algorithm{ECDSAP256SHA256, ED25519, RSASHA256} {
		for _, role := range []Role{KSK, ZSK} {
			t.Run(alg.String()+"/"+string(role), func(t *testing.T) {
				k, err := GenerateKey("Example.COM", role, policyFor(alg), testNow)
				if err != nil {
					t.Fatal(err)
				}
				if k.Zone != "example.com." {
					t.Errorf("zone %q", k.Zone)
				}
				rr, err := dnskeyRR(k)
				if err != nil {
					t.Fatal(err)
				}
				want := uint16(256)
				if role == KSK {
					want = 257
				}
				if rr.Flags != want || rr.Algorithm != uint8(alg) || rr.Protocol != 3 {
					t.Errorf("DNSKEY %v", rr)
				}
				if got, w := k.Tag(), rr.KeyTag(); got != w {
					t.Errorf("Tag() = %d, miekg/dns says %d", got, w)
				}
				ds := rr.ToDS(dns.SHA256)
				got, err := unpack("example.com.", dns.TypeDS, 3600, k.DS([]byte("\x07example\x03com\x00")))
				if err != nil {
					t.Fatal(err)
				}
				if got.(*dns.DS).Digest != ds.Digest || got.(*dns.DS).KeyTag != ds.KeyTag {
					t.Errorf("DS %v, miekg/dns %v", got, ds)
				}
				// The private key signs what the public key verifies.
				sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 60},
					TypeCovered: dns.TypeTXT, Algorithm: uint8(alg), Labels: 2, OrigTtl: 60,
					Expiration: uint32(testNow.Add(time.Hour).Unix()), Inception: uint32(testNow.Unix()), KeyTag: k.Tag(), SignerName: "example.com."}
				txt := []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"x"}}}
				if err := sig.Sign(k.Private, txt); err != nil {
					t.Fatal(err)
				}
				if err := sig.Verify(rr, txt); err != nil {
					t.Errorf("miekg/dns signature with the private key does not verify with our DNSKEY: %v", err)
				}
			})
		}
	}
}

func dnskeyRR(k *Key) (*dns.DNSKEY, error) {
	rr, err := unpack(k.Zone, dns.TypeDNSKEY, 3600, k.DNSKEY())
	if err != nil {
		return nil, err
	}
	return rr.(*dns.DNSKEY), nil
}

func unpack(owner string, t uint16, ttl uint32, rd []byte) (dns.RR, error) {
	name, err := zone.NameWire(owner)
	if err != nil {
		return nil, err
	}
	return zone.RR{Name: name, Type: t, TTL: ttl, Rdata: rd}.DNS()
}

func TestKeyStores(t *testing.T) {
	ctx := context.Background()
	sealer, err := NewSealer(GenerateKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	fs, err := OpenFileStore(ctx, t.TempDir(), sealer)
	if err != nil {
		t.Fatal(err)
	}
	for name, ks := range map[string]KeyStore{"mem": NewMemStore(), "file": fs} {
		t.Run(name, func(t *testing.T) {
			var keys []*Key
			for i, alg := range []Algorithm{ECDSAP256SHA256, ED25519, RSASHA256} {
				k, err := GenerateKey("example.com", KSK, policyFor(alg), testNow.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				k.Publish = testNow
				if err := ks.Put(ctx, k); err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
			other, _ := GenerateKey("0/24.2.0.192.in-addr.arpa", ZSK, DefaultPolicy(), testNow)
			if err := ks.Put(ctx, other); err != nil {
				t.Fatal(err)
			}
			// Retiming a key replaces it.
			keys[0].Retire = testNow.Add(day)
			if err := ks.Put(ctx, keys[0]); err != nil {
				t.Fatal(err)
			}
			got, err := ks.Keys(ctx, "EXAMPLE.com.")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("%d keys, want 3", len(got))
			}
			for i, k := range got {
				w := keys[i]
				if k.ID != w.ID || k.Tag() != w.Tag() || string(k.DNSKEY()) != string(w.DNSKEY()) ||
					!k.Publish.Equal(w.Publish) || !k.Retire.Equal(w.Retire) || k.Role != w.Role {
					t.Errorf("key %d: got %+v, want %+v", i, k, w)
				}
			}
			zones, _ := ks.Zones(ctx)
			if strings.Join(zones, " ") != "0/24.2.0.192.in-addr.arpa. example.com." {
				t.Errorf("Zones() = %q", zones)
			}
			if err := ks.Delete(ctx, "example.com", keys[1].ID); err != nil {
				t.Fatal(err)
			}
			if err := ks.Delete(ctx, "example.com", keys[1].ID); !errors.Is(err, ErrNoKey) {
				t.Errorf("second delete: %v, want ErrNoKey", err)
			}
			if got, _ := ks.Keys(ctx, "example.com"); len(got) != 2 {
				t.Errorf("%d keys after delete, want 2", len(got))
			}
			// A backup restores into an empty store.
			backup, err := Export(ctx, ks, sealer)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(backup), "PRIVATE") || strings.Contains(string(backup), keys[0].ID) {
				t.Error("the backup shows its contents")
			}
			restored := NewMemStore()
			n, err := Import(ctx, restored, sealer, backup)
			if err != nil || n != 3 {
				t.Fatalf("Import: %d, %v", n, err)
			}
			if got, _ := restored.Keys(ctx, "example.com"); len(got) != 2 || got[0].ID != keys[0].ID {
				t.Errorf("restored %v", got)
			}
			wrong, _ := NewSealer(GenerateKeyFile())
			if _, err := Import(ctx, NewMemStore(), wrong, backup); !errors.Is(err, ErrWrongKeyFile) {
				t.Errorf("Import with another key file: %v", err)
			}
		})
	}
}

func TestFileStoreRefusesWrongKeyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(good, GenerateKeyFile(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, GenerateKeyFile(), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSealer(good)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	fs, err := OpenFileStore(ctx, keys, s)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := GenerateKey("example.com", CSK, DefaultPolicy(), testNow)
	if err := fs.Put(ctx, k); err != nil {
		t.Fatal(err)
	}
	// The key is not on disk in the clear.
	raw, err := os.ReadFile(filepath.Join(keys, "example.com", k.ID+".key"))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := k.marshalPrivate()
	if strings.Contains(string(raw), string(der[len(der)-16:])) {
		t.Error("the private key is on disk in the clear")
	}
	b, err := LoadSealer(bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenFileStore(ctx, keys, b)
	if !errors.Is(err, ErrWrongKeyFile) || !strings.Contains(err.Error(), "needs the key file of fingerprint "+s.Fingerprint()) ||
		!strings.Contains(err.Error(), bad+" has "+b.Fingerprint()) {
		t.Errorf("open with the wrong key file: %v", err)
	}
	// A key file moved to another zone's directory does not open.
	if err := os.MkdirAll(filepath.Join(keys, "example.net"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(keys, "example.com", k.ID+".key"), filepath.Join(keys, "example.net", k.ID+".key")); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Keys(ctx, "example.net"); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("moved key: %v", err)
	}
	// Key files: the right size, and private.
	if err := os.WriteFile(bad, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSealer(bad); err == nil || !strings.Contains(err.Error(), "not a key: want 32 bytes") {
		t.Errorf("short key file: %v", err)
	}
	if err := os.Chmod(good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSealer(good); err == nil || !strings.Contains(err.Error(), "lets others read it") {
		t.Errorf("world-readable key file: %v", err)
	}
}
