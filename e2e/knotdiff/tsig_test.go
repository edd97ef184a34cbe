package knotdiff

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TSIG (RFC 8945) on ordinary queries, Knot against anycastd: both hold
// one key, tsigKey, and answer queries signed with it, with an unknown key,
// a wrong MAC or a time outside the fudge. The responses are compared as in
// TestKnotDiff (header, question, sections, EDNS) and, beside that, their
// TSIG records field by field: owner, algorithm, fudge, MAC size, original
// ID, error, other data, which time is signed (the request's or the
// server's), and whether the MAC verifies with the key. The MAC itself and
// the time differ between any two signers and are not compared.

const (
	tsigKey    = "knotdiff-key."
	tsigSecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	// tsigOther is a secret of the right size that is not the key's.
	tsigOther = "AmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
)

// tsigQuery is one signed query of the test.
type tsigQuery struct {
	name   string
	qname  string
	qtype  uint16
	edns   bool // EDNS with DO and NSID
	tcp    bool
	key    string
	alg    string
	secret string
	skew   time.Duration // of the time signed, from now
	// What Knot answers (checked, so that a misconfigured Knot does not
	// pass for agreement): RCODE and TSIG error.
	rcode   int
	tsigErr uint16
}

// tsigQueries: each kind of TSIG outcome over UDP and TCP, with and
// without EDNS, on positive, negative, referral and truncated answers.
// Valid queries are signed a minute ago (inside the 300 s fudge), so that a
// signed answer's time tells the request's from the server's.
func tsigQueries() []tsigQuery {
	const ago = -time.Minute
	valid := func(name, qname string, qtype uint16, edns, tcp bool, rcode int) tsigQuery {
		return tsigQuery{name: name, qname: qname, qtype: qtype, edns: edns, tcp: tcp,
			key: tsigKey, alg: dns.HmacSHA256, secret: tsigSecret, skew: ago, rcode: rcode}
	}
	return []tsigQuery{
		valid("valid/soa", "example.com.", dns.TypeSOA, false, false, dns.RcodeSuccess),
		valid("valid/a-edns", "www.example.com.", dns.TypeA, true, false, dns.RcodeSuccess),
		valid("valid/a-tcp", "www.example.com.", dns.TypeA, true, true, dns.RcodeSuccess),
		valid("valid/nxdomain", "missing.example.com.", dns.TypeA, false, false, dns.RcodeNameError),
		valid("valid/nodata", "www.example.com.", dns.TypeMX, true, false, dns.RcodeSuccess),
		valid("valid/referral", "www.sub.example.com.", dns.TypeA, false, false, dns.RcodeSuccess),
		valid("valid/truncated-udp", "big.example.com.", dns.TypeA, false, false, dns.RcodeSuccess),
		valid("valid/big-tcp", "big.example.com.", dns.TypeNS, false, true, dns.RcodeSuccess),
		valid("valid/key-name-case", "www.example.com.", dns.TypeA, false, false, dns.RcodeSuccess),
		valid("valid/out-of-zone", "www.example.org.", dns.TypeA, false, false, dns.RcodeRefused),

		{name: "badkey/unknown-key", qname: "www.example.com.", qtype: dns.TypeA, key: "other-key.", alg: dns.HmacSHA256,
			secret: tsigSecret, skew: -2 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey},
		{name: "badkey/unknown-key-edns-tcp", qname: "www.example.com.", qtype: dns.TypeA, edns: true, tcp: true, key: "other-key.",
			alg: dns.HmacSHA256, secret: tsigSecret, skew: -2 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey},
		{name: "badkey/wrong-algorithm", qname: "www.example.com.", qtype: dns.TypeA, key: tsigKey, alg: dns.HmacSHA512,
			secret: tsigSecret, skew: -2 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadKey},
		{name: "badsig/wrong-mac", qname: "www.example.com.", qtype: dns.TypeA, key: tsigKey, alg: dns.HmacSHA256,
			secret: tsigOther, skew: -2 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadSig},
		{name: "badsig/wrong-mac-edns-tcp", qname: "missing.example.com.", qtype: dns.TypeA, edns: true, tcp: true, key: tsigKey,
			alg: dns.HmacSHA256, secret: tsigOther, skew: -2 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadSig},
		{name: "badtime/past", qname: "www.example.com.", qtype: dns.TypeA, key: tsigKey, alg: dns.HmacSHA256,
			secret: tsigSecret, skew: -20 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadTime},
		{name: "badtime/future-edns", qname: "www.example.com.", qtype: dns.TypeA, edns: true, key: tsigKey, alg: dns.HmacSHA256,
			secret: tsigSecret, skew: 20 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadTime},
		{name: "badtime/past-tcp", qname: "www.example.com.", qtype: dns.TypeA, tcp: true, key: tsigKey, alg: dns.HmacSHA256,
			secret: tsigSecret, skew: -20 * time.Minute, rcode: dns.RcodeNotAuth, tsigErr: dns.RcodeBadTime},
	}
}

// wire packs q signed as it says; it returns the message, its MAC (hex)
// and the time signed.
func (q *tsigQuery) wire(t *testing.T, id uint16) ([]byte, string, uint64) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(q.qname, q.qtype)
	m.Id = id
	m.RecursionDesired = false
	if q.edns {
		m.SetEdns0(1232, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	}
	key := q.key
	if q.name == "valid/key-name-case" {
		key = strings.ToUpper(key) // names compare without case (RFC 8945 §4.2)
	}
	signed := time.Now().Add(q.skew).Unix()
	m.SetTsig(key, q.alg, 300, signed)
	b, mac, err := dns.TsigGenerate(m, q.secret, "", false)
	if err != nil {
		t.Fatalf("sign %s: %v", q.name, err)
	}
	return b, mac, uint64(signed)
}

// tsigView is the TSIG record of a response, as compared.
type tsigView struct {
	Present   bool
	Owner     string // lower case
	Algorithm string
	Fudge     uint16
	MACSize   uint16
	OrigIDIs  string // "message id" or the value
	Error     string
	OtherLen  uint16
	// Time is "request" when the request's time signed is echoed,
	// "server" when it is the server's clock (within 10 s), else the
	// value; OtherData likewise for BADTIME's server time.
	Time      string
	OtherData string
	// Verifies: the MAC checks with the key over the request MAC and the
	// response (RFC 8945 §4.3.3, §5.3).
	Verifies bool
}

// tsigPair is what is compared for one response.
type tsigPair struct {
	Response rendered
	TSIG     tsigView
}

// newTSIGView decodes a response: the view of TestKnotDiff without the
// TSIG record, and the TSIG record.
func newTSIGView(t *testing.T, id uint16, resp []byte, reqMAC string, reqTime uint64) (*view, tsigView) {
	t.Helper()
	v := newView(id, resp, nil)
	var tv tsigView
	var rest []dns.RR
	for _, rr := range v.sections[2] {
		ts, ok := rr.(*dns.TSIG)
		if !ok {
			rest = append(rest, rr)
			continue
		}
		tv = tsigView{
			Present:   true,
			Owner:     strings.ToLower(ts.Hdr.Name),
			Algorithm: strings.ToLower(ts.Algorithm),
			Fudge:     ts.Fudge,
			MACSize:   ts.MACSize,
			OrigIDIs:  fmt.Sprint(ts.OrigId),
			Error:     tsigErrString(ts.Error),
			OtherLen:  ts.OtherLen,
			Time:      timeClass(ts.TimeSigned, reqTime),
		}
		if len(resp) >= 2 && ts.OrigId == binary.BigEndian.Uint16(resp) {
			tv.OrigIDIs = "message id"
		}
		if ts.OtherLen == 6 {
			if o, err := hex.DecodeString(ts.OtherData); err == nil && len(o) == 6 {
				tv.OtherData = timeClass(uint64(o[0])<<40|uint64(o[1])<<32|uint64(binary.BigEndian.Uint32(o[2:])), reqTime)
			}
		} else {
			tv.OtherData = ts.OtherData
		}
		tv.Verifies = testkit.VerifyTSIG(resp, tsigSecret, reqMAC) == nil
	}
	v.sections[2] = rest
	return v, tv
}

// tsigErrString names a TSIG error (16 is BADSIG here, not BADVERS).
func tsigErrString(e uint16) string {
	switch e {
	case 0:
		return "NOERROR"
	case dns.RcodeBadSig:
		return "BADSIG"
	case dns.RcodeBadKey:
		return "BADKEY"
	case dns.RcodeBadTime:
		return "BADTIME"
	}
	return fmt.Sprintf("TSIG-ERROR%d", e)
}

// String prints a pair for logs, EDNS included.
func (p tsigPair) String() string {
	edns := "none"
	if e := p.Response.EDNS; e != nil {
		edns = fmt.Sprintf("%+v", *e)
	}
	r := p.Response
	return fmt.Sprintf("%s [%s] question=%v answer=%v authority=%v additional=%v edns=%s tsig=%+v",
		r.Rcode, r.Flags, r.Question, r.Answer, r.Authority, r.Additional, edns, p.TSIG)
}

func timeClass(got, req uint64) string {
	now := uint64(time.Now().Unix())
	switch {
	case got == req:
		return "request"
	case got+10 >= now && got <= now+10:
		return "server"
	}
	return fmt.Sprint(got)
}

// startKnotTSIG starts Knot with the key tsigKey allowed for queries on
// every zone (Knot checks a query's key through an ACL with action query;
// a key in no such ACL is BADKEY).
func startKnotTSIG(t *testing.T, zones []testZone) *process {
	t.Helper()
	return startKnotWith(t, "knotd-tsig", zones, func(t *testing.T, conf string) string {
		const tmpl = "template:\n  - id: default\n"
		if !strings.Contains(conf, tmpl) {
			t.Fatalf("knot.conf has no %q to extend", tmpl)
		}
		return strings.Replace(conf, tmpl, fmt.Sprintf(`key:
  - id: %s
    algorithm: hmac-sha256
    secret: %s

acl:
  - id: tsig-query
    key: %s
    action: query

`, strings.TrimSuffix(tsigKey, "."), tsigSecret, strings.TrimSuffix(tsigKey, "."))+tmpl+"    acl: tsig-query\n", 1)
	})
}

// startAnycastdTSIG starts the node with tsigKey in tsig_keys.
func startAnycastdTSIG(t *testing.T, zones []testZone) *process {
	t.Helper()
	return startAnycastdConfig(t, "anycastd-tsig", zones,
		fmt.Sprintf("identity: {name: %s}\ntsig_keys:\n  - {name: %s, algorithm: hmac-sha256, secret: %q}\n", identity, tsigKey, tsigSecret))
}

// tsigAccepted are the differences between Knot's and anycastd's answers
// to signed queries that the RFCs allow, or where Knot departs from them;
// each applies only where it says and reports whether it was needed.
var tsigAccepted = []struct {
	id, reason string
	apply      func(q *tsigQuery, knot, ours *tsigPair) bool
}{
	{
		id: "knot-unsigned-refused",
		reason: "Knot 3.2 checks a query's key through the ACL of the zone it asks about, so a validly signed query " +
			"for a name in no served zone gets an unsigned REFUSED. RFC 8945 §5.3: the answer to a request whose " +
			"MAC verified is signed with the same key; anycastd signs it, and the comparison requires it to verify",
		apply: func(q *tsigQuery, knot, ours *tsigPair) bool {
			if q.tsigErr != 0 || knot.Response.Rcode != "REFUSED" || knot.TSIG.Present || !ours.TSIG.Verifies {
				return false
			}
			knot.TSIG = ours.TSIG // what RFC 8945 requires, and ours verified
			return true
		},
	},
}

// TestTSIGQueries: for the same signed queries, anycastd answers as Knot
// does — RFC 8945 §5.2: BADKEY and BADSIG as NOTAUTH with an unsigned TSIG
// record, BADTIME as NOTAUTH signed with the server's time in Other Data,
// and signed answers to valid queries — with no unexplained difference.
func TestTSIGQueries(t *testing.T) {
	skipShort(t)
	zones := testZones()[:1] // example.com.
	knot := startKnotTSIG(t, zones)
	ours := startAnycastdTSIG(t, zones)
	used := map[string]int{}
	for i, q := range tsigQueries() {
		t.Run(q.name, func(t *testing.T) {
			id := uint16(0x7000 + i)
			wire, mac, reqTime := q.wire(t, id)
			network := "udp"
			if q.tcp {
				network = "tcp"
			}
			var pairs [2]tsigPair
			for j, addr := range []netip.AddrPort{knot.addr, ours.addr} {
				resp, err := ask(network, addr, wire, 2*time.Second, 2)
				if err != nil {
					t.Fatalf("%s to %s: %v", network, []string{"knot", "anycastd"}[j], err)
				}
				v, tv := newTSIGView(t, id, resp, mac, reqTime)
				pairs[j] = tsigPair{Response: v.render(), TSIG: tv}
			}
			kp, op := &pairs[0], &pairs[1]
			wantRcode := rcodeString(q.rcode)
			if kp.Response.Rcode != wantRcode || q.tsigErr != 0 && (!kp.TSIG.Present || kp.TSIG.Error != tsigErrString(q.tsigErr)) {
				t.Errorf("Knot answered %s with TSIG error %s; this query is meant to get %s/%s (fix the query or Knot's configuration)",
					kp.Response.Rcode, kp.TSIG.Error, wantRcode, tsigErrString(q.tsigErr))
			}
			if q.tsigErr == 0 && q.rcode != dns.RcodeRefused && !kp.TSIG.Verifies {
				t.Errorf("Knot's answer to a valid signed query does not verify: %+v", kp.TSIG)
			}
			full := fmt.Sprintf("knot:     %s\nanycastd: %s", kp, op)
			if *dump {
				t.Log(full)
			}
			for _, a := range tsigAccepted {
				if a.apply(&q, kp, op) {
					used[a.id]++
					t.Logf("accepted difference %s", a.id)
				}
			}
			if diff := cmp.Diff(*kp, *op); diff != "" {
				t.Errorf("anycastd differs from Knot (-knot +anycastd):\n%s\nas received:\n%s", diff, full)
			}
		})
	}
	for _, a := range tsigAccepted {
		t.Logf("accepted difference %s applied to %d queries: %s", a.id, used[a.id], a.reason)
	}
}
