package tsig_test

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/tsig"
)

const (
	secretA = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	secretB = "AmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
)

func ring(t *testing.T, keys ...tsig.Key) *tsig.Keyring {
	t.Helper()
	r, err := tsig.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNew(t *testing.T) {
	r := ring(t, tsig.Key{Name: "Xfr-Key", Algorithm: "HMAC-SHA512.", Secret: secretA},
		tsig.Key{Name: "b.", Algorithm: "hmac-sha1", Secret: secretB})
	if r.Len() != 2 || !slices.Equal(r.Names(), []string{"b.", "xfr-key."}) || !r.Has("XFR-KEY.") || r.Has("c.") {
		t.Errorf("keyring: len %d, names %v", r.Len(), r.Names())
	}
	var none *tsig.Keyring
	if none.Len() != 0 || none.Has("b.") || none.Only("b.") != nil || !none.Equal(nil) {
		t.Error("a nil keyring is not an empty one")
	}
	for _, tc := range []struct {
		key  tsig.Key
		want string
	}{
		{tsig.Key{Name: "", Algorithm: "hmac-sha256", Secret: secretA}, `keys[1]: invalid name ""`},
		{tsig.Key{Name: ".", Algorithm: "hmac-sha256", Secret: secretA}, `keys[1]: invalid name "."`},
		{tsig.Key{Name: "k.", Algorithm: "hmac-md5", Secret: secretA}, `keys[1]: unsupported algorithm "hmac-md5" (want one of hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1)`},
		{tsig.Key{Name: "k.", Algorithm: "hmac-sha256", Secret: "%%"}, "keys[1]: secret is not base64"},
		{tsig.Key{Name: "k.", Algorithm: "hmac-sha256", Secret: ""}, "keys[1]: secret is required"},
		{tsig.Key{Name: "A.", Algorithm: "hmac-sha256", Secret: secretA}, "keys[1]: duplicate key a."},
	} {
		_, err := tsig.New([]tsig.Key{{Name: "a.", Algorithm: "hmac-sha256", Secret: secretA}, tc.key})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.key, err, tc.want)
		}
	}
}

func TestOnlyEqual(t *testing.T) {
	a := ring(t, tsig.Key{Name: "a.", Algorithm: "hmac-sha256", Secret: secretA}, tsig.Key{Name: "b.", Algorithm: "hmac-sha256", Secret: secretB})
	same := ring(t, tsig.Key{Name: "A", Algorithm: "hmac-sha256", Secret: secretA})
	otherSecret := ring(t, tsig.Key{Name: "a.", Algorithm: "hmac-sha256", Secret: secretB})
	otherAlg := ring(t, tsig.Key{Name: "a.", Algorithm: "hmac-sha384", Secret: secretA})
	only := a.Only("a.")
	if only.Len() != 1 || !only.Equal(same) || only.Equal(otherSecret) || only.Equal(otherAlg) || only.Equal(a) || a.Only("c.") != nil {
		t.Error("Only/Equal do not compare names, algorithms and secrets")
	}
}

// signedQuery packs a query signed by miekg/dns with its own secret map,
// at now+skew; it returns the message and its MAC.
func signedQuery(t *testing.T, key, alg, secret string, skew time.Duration) ([]byte, string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeAXFR)
	m.SetTsig(key, alg, 300, time.Now().Add(skew).Unix())
	raw, mac, err := dns.TsigGenerate(m, secret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	return raw, mac
}

// TestCheck verifies requests that miekg/dns signed, and maps each failure
// to its TSIG error.
func TestCheck(t *testing.T) {
	r := ring(t, tsig.Key{Name: "k.", Algorithm: "hmac-sha256", Secret: secretA})
	for _, tc := range []struct {
		name, key, alg, secret string
		skew                   time.Duration
		want                   error
		rcode                  uint16
	}{
		{"valid", "k.", dns.HmacSHA256, secretA, 0, nil, 0},
		{"key in upper case", "K.", dns.HmacSHA256, secretA, 0, nil, 0},
		{"unknown key", "x.", dns.HmacSHA256, secretA, 0, dns.ErrSecret, dns.RcodeBadKey},
		{"other algorithm", "k.", dns.HmacSHA512, secretA, 0, dns.ErrKeyAlg, dns.RcodeBadKey},
		{"wrong secret", "k.", dns.HmacSHA256, secretB, 0, dns.ErrSig, dns.RcodeBadSig},
		{"an hour ago", "k.", dns.HmacSHA256, secretA, -time.Hour, dns.ErrTime, dns.RcodeBadTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := signedQuery(t, tc.key, tc.alg, tc.secret, tc.skew)
			before := append([]byte(nil), raw...)
			err := r.Check(raw, "", false)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if !slices.Equal(raw, before) {
				t.Error("Check modified the message")
			}
			if err != nil && tsig.Rcode(err) != tc.rcode {
				t.Errorf("Rcode(%v) = %d, want %d", err, tsig.Rcode(err), tc.rcode)
			}
		})
	}
	var none *tsig.Keyring
	raw, _ := signedQuery(t, "k.", dns.HmacSHA256, secretA, 0)
	if err := none.Check(raw, "", false); !errors.Is(err, dns.ErrSecret) {
		t.Errorf("no keys: %v, want dns.ErrSecret", err)
	}
}

// TestSign signs a request that miekg/dns verifies with its own code.
func TestSign(t *testing.T) {
	r := ring(t, tsig.Key{Name: "k.", Algorithm: "hmac-sha384", Secret: secretA})
	m := new(dns.Msg)
	m.SetQuestion("example.com.", dns.TypeSOA)
	raw, mac, err := r.Sign(m, "K.", "")
	if err != nil {
		t.Fatal(err)
	}
	var got dns.Msg
	if err := got.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	if ts := got.IsTsig(); ts == nil || ts.Algorithm != dns.HmacSHA384 || ts.Fudge != tsig.Fudge || ts.Hdr.Name != "k." {
		t.Fatalf("TSIG record %v", ts)
	}
	// TsigVerify rewrites the ID and ARCOUNT of what it is given.
	if err := dns.TsigVerify(slices.Clone(raw), secretA, "", false); err != nil {
		t.Errorf("miekg/dns does not verify it: %v", err)
	}
	if mac == "" {
		t.Error("no MAC returned")
	}
	if _, _, err := r.Sign(new(dns.Msg).SetQuestion("x.", dns.TypeSOA), "other.", ""); !errors.Is(err, dns.ErrSecret) {
		t.Errorf("Sign with an unknown key: %v", err)
	}
}

// answer packs one message of an answer to q, with n A records.
func answer(t *testing.T, q []byte, n int) []byte {
	t.Helper()
	var req dns.Msg
	if err := req.Unpack(q); err != nil {
		t.Fatal(err)
	}
	a := new(dns.Msg)
	a.SetReply(&req)
	a.Extra = nil
	for i := range n {
		rr, _ := dns.NewRR("example.com. 60 IN A 192.0.2." + string(rune('1'+i)))
		a.Answer = append(a.Answer, rr)
	}
	out, err := a.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSignerStream signs a three-message answer: miekg/dns verifies the
// first over the request's MAC and the next ones over the previous MAC
// with the timers only (RFC 8945 §5.3.1).
func TestSignerStream(t *testing.T) {
	r := ring(t, tsig.Key{Name: "k.", Algorithm: "hmac-sha256", Secret: secretA})
	q, reqMAC := signedQuery(t, "k.", dns.HmacSHA256, secretA, 0)
	var req dns.Msg
	if err := req.Unpack(q); err != nil {
		t.Fatal(err)
	}
	rq, err := tsig.RequestOf(req.IsTsig())
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Signer(rq, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	prior := reqMAC
	for i := range 3 {
		msg := answer(t, q, i+1)
		before := len(msg)
		signed := s.Sign(msg)
		if len(signed)-before > s.Size() {
			t.Errorf("message %d: Sign appended %d bytes, Size says at most %d", i, len(signed)-before, s.Size())
		}
		if err := dns.TsigVerify(slices.Clone(signed), secretA, prior, i > 0); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var m dns.Msg
		if err := m.Unpack(signed); err != nil {
			t.Fatal(err)
		}
		prior = m.IsTsig().MAC
	}
	if _, err := r.Signer(tsig.Request{Key: "x.", Algorithm: dns.HmacSHA256}, 0, nil); !errors.Is(err, dns.ErrSecret) {
		t.Errorf("a signer for a key the ring does not hold: %v", err)
	}
}

// TestSignerErrors answers requests that did not verify: BADKEY and BADSIG
// unsigned with the request's time and fudge, BADTIME signed with the
// request's time and fudge and ours in Other Data.
func TestSignerErrors(t *testing.T) {
	r := ring(t, tsig.Key{Name: "k.", Algorithm: "hmac-sha256", Secret: secretA})
	now := time.Unix(1_800_000_000, 0)
	req := tsig.Request{Key: "K.", Algorithm: dns.HmacSHA256, MAC: []byte{1, 2, 3, 4}, Time: 1_700_000_000, Fudge: 200}
	q, _ := signedQuery(t, "k.", dns.HmacSHA256, secretA, 0)
	for _, code := range []uint16{dns.RcodeBadKey, dns.RcodeBadSig, dns.RcodeBadTime} {
		t.Run(dns.RcodeToString[int(code)], func(t *testing.T) {
			s, err := r.Signer(req, code, func() time.Time { return now })
			if err != nil {
				t.Fatal(err)
			}
			signed := s.Sign(answer(t, q, 0))
			var m dns.Msg
			if err := m.Unpack(signed); err != nil {
				t.Fatal(err)
			}
			ts := m.IsTsig()
			if ts == nil || ts.Error != code || ts.TimeSigned != req.Time || ts.Fudge != req.Fudge || ts.Hdr.Name != "k." {
				t.Fatalf("TSIG %v, want error %d with the request's time and fudge", ts, code)
			}
			if code != dns.RcodeBadTime {
				if ts.MAC != "" || ts.OtherData != "" {
					t.Errorf("MAC %q other %q, want an unsigned answer", ts.MAC, ts.OtherData)
				}
				return
			}
			if ts.OtherData != "00006b49d200" {
				t.Errorf("other data %q, want our time %x", ts.OtherData, now.Unix())
			}
			if err := testkit.VerifyTSIG(signed, secretA, hex.EncodeToString(req.MAC)); err != nil {
				t.Error(err)
			}
		})
	}
}
