//go:build cgo

package sign

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/miekg/pkcs11"

	"github.com/anycastdns/anycastdns/internal/sign/signtest"
)

// softToken makes a SoftHSM token for the test.
func softToken(t *testing.T, label string) TokenConfig {
	t.Helper()
	signtest.SoftHSM(t, label)
	return TokenConfig{Module: signtest.SoftHSMModule, Label: label, PIN: signtest.SoftHSMPIN}
}

func openTestToken(t *testing.T, c TokenConfig) *Token {
	t.Helper()
	tok, err := OpenToken(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tok.Close() })
	return tok
}

// TestTokenKeysSign: keys made in a token, of each algorithm, sign a zone
// that verifies (miekg/dns and the external verifiers), and sign through
// crypto.Signer what miekg/dns verifies.
func TestTokenKeysSign(t *testing.T) {
	c := softToken(t, "sign")
	tok := openTestToken(t, c)
	sealer, err := NewSealer(GenerateKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	ts := sealer.WithToken(tok)
	for _, alg := range []Algorithm{ECDSAP256SHA256, ED25519, RSASHA256} {
		for _, csk := range []bool{true, false} {
			name := alg.String() + "/csk"
			if !csk {
				name = alg.String() + "/ksk+zsk"
			}
			t.Run(name, func(t *testing.T) {
				p := policyFor(alg)
				p.CSK, p.NSEC3 = csk, !csk
				roles := []Role{CSK}
				if !csk {
					roles = []Role{KSK, ZSK}
				}
				var keys []*Key
				for _, r := range roles {
					k, err := ts.GenerateKey("example.com.", r, p, time.Now())
					if err != nil {
						t.Fatal(err)
					}
					if !k.InToken() {
						t.Fatalf("%s key is not in the token", r)
					}
					keys = append(keys, k)
				}
				s, err := New(p, "example.com.", keys)
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now()
				sz, err := s.Sign(loadZone(t, "example.com.", "testdata/example.com.zone"), now)
				if err != nil {
					t.Fatal(err)
				}
				checkSigned(t, s, sz, now)
				verifyExternal(t, sz)

				k := keys[0]
				rr, err := dnskeyRR(k)
				if err != nil {
					t.Fatal(err)
				}
				sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 60},
					TypeCovered: dns.TypeTXT, Algorithm: uint8(alg), Labels: 2, OrigTtl: 60,
					Expiration: uint32(now.Add(time.Hour).Unix()), Inception: uint32(now.Unix()), KeyTag: k.Tag(), SignerName: "example.com."}
				txt := []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"x"}}}
				if err := sig.Sign(k.Private, txt); err != nil {
					t.Fatal(err)
				}
				if err := sig.Verify(rr, txt); err != nil {
					t.Errorf("a signature through crypto.Signer does not verify: %v", err)
				}
			})
		}
	}
}

// TestTokenKeyNotExtractable: the private key made in the token is
// sensitive and not extractable, and its value cannot be read.
func TestTokenKeyNotExtractable(t *testing.T) {
	tok := openTestToken(t, softToken(t, "sensitive"))
	sealer, _ := NewSealer(GenerateKeyFile())
	k, err := sealer.WithToken(tok).GenerateKey("example.com.", CSK, DefaultPolicy(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pk := k.Private.(*p11Key)
	err = tok.with(func(sh pkcs11.SessionHandle) error {
		attrs, err := tok.ctx.GetAttributeValue(sh, pk.priv, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil)})
		if err != nil {
			return err
		}
		if attrs[0].Value[0] != 1 || attrs[1].Value[0] != 0 || attrs[2].Value[0] != 1 {
			t.Errorf("CKA_SENSITIVE %v, CKA_EXTRACTABLE %v, CKA_TOKEN %v: want true, false, true", attrs[0].Value, attrs[1].Value, attrs[2].Value)
		}
		if _, err := tok.ctx.GetAttributeValue(sh, pk.priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
			t.Error("the private key's CKA_VALUE can be read")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTokenKeySealed: what a store keeps of a token key is a reference
// without the private key; it opens again in a token opened anew (a
// restart), not without a token; keys of the key file alone keep
// working beside token keys; a key destroyed is gone from the token.
func TestTokenKeySealed(t *testing.T) {
	c := softToken(t, "sealed")
	sealer, _ := NewSealer(GenerateKeyFile())
	tok, err := OpenToken(c)
	if err != nil {
		t.Fatal(err)
	}
	ts := sealer.WithToken(tok)
	k, err := ts.GenerateKey("example.com.", CSK, DefaultPolicy(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	soft, err := GenerateKey("example.com.", ZSK, DefaultPolicy(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	data, err := ts.SealKey(k)
	if err != nil {
		t.Fatal(err)
	}
	softData, err := sealer.SealKey(soft)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := sealer.Open(data, k.Zone+" "+k.ID)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(plain, &j); err != nil {
		t.Fatal(err)
	}
	if _, ok := j["private_pkcs8"]; ok {
		t.Errorf("the sealed token key holds a private key: %s", plain)
	}
	ref, _ := j["pkcs11"].(map[string]any)
	if ref["token"] != "sealed" || ref["id"] == "" || ref["public"] == "" {
		t.Errorf("the sealed token key's reference: %s", plain)
	}
	if _, err := sealer.OpenKey(data, k.Zone, k.ID); !errors.Is(err, ErrNoToken) {
		t.Errorf("OpenKey without a token: %v, want ErrNoToken", err)
	}
	export, err := Export(t.Context(), memStoreOf(t, k), ts)
	if err != nil {
		t.Fatal(err)
	}
	if eplain, err := sealer.Open(export, exportFormat); err != nil || strings.Contains(string(eplain), "private_pkcs8") {
		t.Errorf("the export of a token key holds a private key (%v): %s", err, eplain)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Private.(*p11Key).signDNSSEC([]byte("x")); err == nil {
		t.Error("a key of a closed token signs")
	}

	// A restart: the token opened again.
	tok2 := openTestToken(t, c)
	ts2 := sealer.WithToken(tok2)
	k2, err := ts2.OpenKey(data, k.Zone, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(k2.DNSKEY()) != string(k.DNSKEY()) || !k2.InToken() {
		t.Errorf("the key opened again differs")
	}
	s2, err := ts2.OpenKey(softData, soft.Zone, soft.ID)
	if err != nil || s2.InToken() {
		t.Fatalf("a sealed software key with a token sealer: %v (in token %v)", err, s2 != nil && s2.InToken())
	}
	p := DefaultPolicy()
	p.CSK = false
	k2.Role = KSK
	s, err := New(p, "example.com.", []*Key{k2, s2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sz, err := s.Sign(loadZone(t, "example.com.", "testdata/example.com.zone"), now)
	if err != nil {
		t.Fatal(err)
	}
	checkSigned(t, s, sz, now)
	if n, err := Import(t.Context(), NewMemStore(), ts2, export); err != nil || n != 1 {
		t.Errorf("import of the export: %d, %v", n, err)
	}

	if err := k2.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := soft.Destroy(); err != nil {
		t.Errorf("Destroy of a software key: %v", err)
	}
	if _, err := ts2.OpenKey(data, k.Zone, k.ID); err == nil || !strings.Contains(err.Error(), "has no private key") {
		t.Errorf("OpenKey of a destroyed key: %v", err)
	}
}

func memStoreOf(t *testing.T, keys ...*Key) *MemStore {
	t.Helper()
	m := NewMemStore()
	for _, k := range keys {
		if err := m.Put(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestOpenTokenErrors: a wrong module, label or PIN is a clear error.
func TestOpenTokenErrors(t *testing.T) {
	c := softToken(t, "errors")
	for _, tc := range []struct {
		name string
		c    TokenConfig
		want string
	}{
		{"no module", TokenConfig{Module: filepath.Join(t.TempDir(), "nothere.so"), Label: c.Label, PIN: c.PIN}, "cannot load it"},
		{"wrong label", TokenConfig{Module: c.Module, Label: "other", PIN: c.PIN}, `no token has this label (the tokens: "errors"`},
		{"wrong PIN", TokenConfig{Module: c.Module, Label: c.Label, PIN: "9999"}, "wrong PIN"},
		{"no PIN", TokenConfig{Module: c.Module, Label: c.Label}, "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := OpenToken(tc.c)
			if err == nil {
				_ = tok.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
	// A failed open leaves the module usable.
	tok := openTestToken(t, c)
	if tok.Label() != "errors" {
		t.Errorf("label %q", tok.Label())
	}
}

// TestReadPIN: the PIN on the first line of a file only the owner reads.
func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pin")
	if err := os.WriteFile(good, []byte("1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pin, err := ReadPIN(good); err != nil || pin != "1234" {
		t.Errorf("ReadPIN = %q, %v", pin, err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("1234\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPIN(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ReadPIN of a file others read: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPIN(empty); err == nil {
		t.Error("ReadPIN of an empty file")
	}
}
