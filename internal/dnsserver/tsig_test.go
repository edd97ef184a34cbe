package dnsserver

import (
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

const (
	testSecret  = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	otherSecret = "AmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
)

// testKeys is the keyring of the tests: one key, k1. with hmac-sha256.
func testKeys() *tsig.Keyring {
	ring, err := tsig.New([]tsig.Key{{Name: "k1.", Algorithm: "hmac-sha256", Secret: testSecret}})
	if err != nil {
		panic(err)
	}
	return ring
}

// signedQuery packs a query for name signed with key (alg, secret) at
// now+skew. It returns the message and its MAC.
func signedQuery(t *testing.T, name string, qtype uint16, edns bool, key, alg, secret string, skew time.Duration) ([]byte, string) {
	wire, mac, _ := signedQueryAt(t, name, qtype, edns, key, alg, secret, skew)
	return wire, mac
}

// signedQueryAt is signedQuery that also returns the time signed.
func signedQueryAt(t *testing.T, name string, qtype uint16, edns bool, key, alg, secret string, skew time.Duration) ([]byte, string, uint64) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	if edns {
		m.SetEdns0(1232, true)
	}
	signed := time.Now().Add(skew).Unix()
	m.SetTsig(key, alg, 300, signed)
	wire, mac, err := dns.TsigGenerate(m, secret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	return wire, mac, uint64(signed)
}

func TestTSIGQueries(t *testing.T) {
	h := testHandler(t)
	set(h, func(s *Settings) { s.TSIG = testKeys() })
	w := h.NewWorker()
	tests := []struct {
		name      string
		qname     string
		key, alg  string
		secret    string
		skew      time.Duration
		tr        Transport
		rcode     int
		tsigErr   uint16
		signed    bool // answer MAC present and verifying
		answers   int
		reqTimeOK bool // Time Signed is the request's
	}{
		{"valid", "www.example.com.", "k1.", dns.HmacSHA256, testSecret, 0, UDP, dns.RcodeSuccess, 0, true, 1, false},
		{"valid tcp", "www.example.com.", "k1.", dns.HmacSHA256, testSecret, 0, TCP, dns.RcodeSuccess, 0, true, 1, false},
		{"valid nxdomain", "nope.example.com.", "K1.", dns.HmacSHA256, testSecret, 0, UDP, dns.RcodeNameError, 0, true, 0, false},
		{"valid refused", "example.org.", "k1.", dns.HmacSHA256, testSecret, 0, UDP, dns.RcodeRefused, 0, true, 0, false},
		{"unknown key", "www.example.com.", "k2.", dns.HmacSHA256, testSecret, -time.Hour, UDP, dns.RcodeNotAuth, dns.RcodeBadKey, false, 0, true},
		{"wrong algorithm", "www.example.com.", "k1.", dns.HmacSHA512, testSecret, 0, UDP, dns.RcodeNotAuth, dns.RcodeBadKey, false, 0, true},
		{"bad mac", "www.example.com.", "k1.", dns.HmacSHA256, otherSecret, -time.Hour, UDP, dns.RcodeNotAuth, dns.RcodeBadSig, false, 0, true},
		{"time past", "www.example.com.", "k1.", dns.HmacSHA256, testSecret, -301 * time.Second, UDP, dns.RcodeNotAuth, dns.RcodeBadTime, true, 0, true},
		{"time future", "www.example.com.", "k1.", dns.HmacSHA256, testSecret, time.Hour, TCP, dns.RcodeNotAuth, dns.RcodeBadTime, true, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, edns := range []bool{false, true} {
				q, mac, reqTime := signedQueryAt(t, tt.qname, dns.TypeA, edns, tt.key, tt.alg, tt.secret, tt.skew)
				resp := answer(w, q, tt.tr)
				if resp == nil {
					t.Fatal("no answer")
				}
				r := new(dns.Msg)
				if err := r.Unpack(resp); err != nil {
					t.Fatalf("unpack: %v", err)
				}
				ts := r.IsTsig()
				if ts == nil {
					t.Fatalf("edns=%t: answer without TSIG:\n%v", edns, r)
				}
				if r.Rcode != tt.rcode || ts.Error != tt.tsigErr || len(r.Answer) != tt.answers {
					t.Errorf("edns=%t: rcode %s, TSIG error %d, %d answers; want %s, %d, %d",
						edns, dns.RcodeToString[r.Rcode], ts.Error, len(r.Answer), dns.RcodeToString[tt.rcode], tt.tsigErr, tt.answers)
				}
				if r.Id != 4242 || ts.OrigId != 4242 || len(r.Question) != 1 || r.Question[0].Name != tt.qname {
					t.Errorf("edns=%t: id %d, orig id %d, question %v", edns, r.Id, ts.OrigId, r.Question)
				}
				if (r.IsEdns0() != nil) != edns {
					t.Errorf("edns=%t: OPT in answer: %t", edns, r.IsEdns0() != nil)
				}
				if ts.Hdr.Name != dns.CanonicalName(tt.key) || ts.Algorithm != tt.alg {
					t.Errorf("TSIG key %s alg %s, want %s %s", ts.Hdr.Name, ts.Algorithm, dns.CanonicalName(tt.key), tt.alg)
				}
				if tt.reqTimeOK && ts.TimeSigned != reqTime {
					t.Errorf("time signed %d, want the request's %d", ts.TimeSigned, reqTime)
				}
				if tt.signed {
					if err := testkit.VerifyTSIG(resp, testSecret, mac); err != nil {
						t.Errorf("edns=%t: answer: %v", edns, err)
					}
					if tt.tsigErr == 0 {
						// miekg/dns agrees (it verifies NOERROR answers only).
						if err := dns.TsigVerify(resp, testSecret, mac, false); err != nil {
							t.Errorf("dns.TsigVerify: %v", err)
						}
					}
				} else if ts.MACSize != 0 {
					t.Errorf("MAC of %d bytes on a %d error, want none (RFC 8945 §5.3.2)", ts.MACSize, tt.tsigErr)
				}
				if tt.tsigErr == dns.RcodeBadTime {
					other, _ := hex.DecodeString(ts.OtherData)
					var v uint64
					for _, b := range other {
						v = v<<8 | uint64(b)
					}
					if len(other) != 6 || v+5 < uint64(time.Now().Unix()) || v > uint64(time.Now().Unix()) {
						t.Errorf("BADTIME other data %x, want our time", other)
					}
				}
			}
		})
	}
}

func TestTSIGNoKeys(t *testing.T) {
	h := testHandler(t) // no SetTSIG
	w := h.NewWorker()
	q, _ := signedQuery(t, "www.example.com.", dns.TypeA, false, "k1.", dns.HmacSHA256, testSecret, 0)
	r := new(dns.Msg)
	if err := r.Unpack(answer(w, q, UDP)); err != nil {
		t.Fatal(err)
	}
	if ts := r.IsTsig(); r.Rcode != dns.RcodeNotAuth || ts == nil || ts.Error != dns.RcodeBadKey {
		t.Errorf("signed query to a node without keys: want NOTAUTH/BADKEY, got\n%v", r)
	}
	// Keys removed on reload: BADKEY again.
	set(h, func(s *Settings) { s.TSIG = testKeys() })
	set(h, func(s *Settings) { s.TSIG = nil })
	if err := r.Unpack(answer(w, q, UDP)); err != nil {
		t.Fatal(err)
	}
	if ts := r.IsTsig(); r.Rcode != dns.RcodeNotAuth || ts == nil || ts.Error != dns.RcodeBadKey {
		t.Errorf("after SetTSIG(nil): want NOTAUTH/BADKEY, got\n%v", r)
	}
}

// TestTSIGNotLast: a TSIG record that is not the last of the message is a
// format error (RFC 8945 §5.1), answered unsigned.
func TestTSIGNotLast(t *testing.T) {
	h := testHandler(t)
	set(h, func(s *Settings) { s.TSIG = testKeys() })
	w := h.NewWorker()
	q, _ := signedQuery(t, "www.example.com.", dns.TypeA, false, "k1.", dns.HmacSHA256, testSecret, 0)
	// Append an OPT record after the TSIG.
	q = append(q, 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(q[10:], 2)
	r := new(dns.Msg)
	if err := r.Unpack(answer(w, q, UDP)); err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeFormatError || r.IsTsig() != nil {
		t.Errorf("want an unsigned FORMERR, got\n%v", r)
	}
}

// TestTSIGTruncation: a signed UDP answer keeps room for its TSIG record:
// an RRset that fits in 512 bytes alone but not with the TSIG is left out
// and TC set, and the answer is still signed and within 512 bytes.
func TestTSIGTruncation(t *testing.T) {
	dir := t.TempDir()
	txt := `"` + strings.Repeat("x", 100) + `"`
	zoneText := "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns1 host 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n" +
		"fill IN TXT " + txt + "\nfill IN TXT " + txt + "1\nfill IN TXT " + txt + "2\nfill IN TXT " + txt + "3\n"
	file := filepath.Join(dir, "example.com.zone")
	if err := os.WriteFile(file, []byte(zoneText), 0o644); err != nil {
		t.Fatal(err)
	}
	z, err := zone.Load("example.com.", file)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(Settings{Identity: Identity{Name: "pop-test"}, MaxUDP: 1232}, &Stats{})
	h.SetZones(zone.NewSet(z))
	set(h, func(s *Settings) { s.TSIG = testKeys() })
	w := h.NewWorker()

	plain := new(dns.Msg)
	plain.SetQuestion("fill.example.com.", dns.TypeTXT)
	r := ask(t, w, plain, UDP)
	if r.Truncated || len(r.Answer) != 4 {
		t.Fatalf("unsigned: the RRset should fit in 512 bytes: tc=%t, %d answers", r.Truncated, len(r.Answer))
	}
	q, mac := signedQuery(t, "fill.example.com.", dns.TypeTXT, false, "k1.", dns.HmacSHA256, testSecret, 0)
	resp := answer(w, q, UDP)
	if len(resp) > 512 {
		t.Errorf("signed answer of %d bytes over a 512-byte limit", len(resp))
	}
	if err := r.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || len(r.Answer) != 0 || r.IsTsig() == nil {
		t.Errorf("signed: want TC, no partial RRset, a TSIG; got\n%v", r)
	}
	if err := dns.TsigVerify(resp, testSecret, mac, false); err != nil {
		t.Errorf("truncated signed answer: %v", err)
	}
	// Over TCP it all fits, signed.
	resp = answer(w, q, TCP)
	if err := r.Unpack(resp); err != nil || r.Truncated || len(r.Answer) != 4 {
		t.Errorf("tcp: %v\n%v", err, r)
	}
	if err := dns.TsigVerify(resp, testSecret, mac, false); err != nil {
		t.Errorf("tcp: %v", err)
	}
}

// TestUnsignedQueriesDoNotAllocate: the TSIG support leaves the path of
// unsigned queries without allocations.
func TestUnsignedQueriesDoNotAllocate(t *testing.T) {
	h := testHandler(t)
	set(h, func(s *Settings) { s.TSIG = testKeys() })
	w := h.NewWorker()
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, true)
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(200, func() { answer(w, p, UDP) }); n != 0 {
		t.Errorf("%v allocations per unsigned query, want 0", n)
	}
}
