package store

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// TestEncodeWire: records in the zone's wire form encode for the change
// log as encodeRRs encodes them as miekg/dns values, which decodeRRs reads.
func TestEncodeWire(t *testing.T) {
	var in []zone.RR
	for _, s := range []string{
		"example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 100 7200 3600 1209600 300",
		"Mixed.Example.com. 300 IN A 192.0.2.1",
		`we\.ird.example.com. 300 IN TXT "a b" "c"`,
		"example.com. 300 IN MX 10 MAIL.example.com.",
		"example.com. 3600 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==",
		"www.example.com. 300 IN RRSIG A 13 3 300 20261222000000 20261208000000 12345 example.com. dGhlIHNpZ25hdHVyZSBvZiBhbiBSUnNldCwgNjQgYnl0ZXMgbG9uZywgcGFkZGVkIG91dCB0byBsZW5ndGg=",
		"www.example.com. 300 IN NSEC zzz.example.com. A RRSIG NSEC",
		"vi6tav6pnkp6b1bqmqeq2hmq0ui8q0p4.example.com. 300 IN NSEC3 1 0 0 - 0123456789ABCDEFGHIJKLMNOPQRSTUV A RRSIG",
		"example.com. 0 IN NSEC3PARAM 1 0 0 -",
		"example.com. 300 IN CAA 0 issue \"ca.example.net\"",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		w, err := zone.WireRR(rr)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		in = append(in, w)
	}
	rrs, err := dnsRRs(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := encodeRRs(rrs)
	if err != nil {
		t.Fatal(err)
	}
	got := encodeWire(in)
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeWire:\n%x\nencodeRRs:\n%x", got, want)
	}
	back, err := decodeRRs(got)
	if err != nil || len(back) != len(in) {
		t.Fatalf("decodeRRs: %d records, %v", len(back), err)
	}
	if len(encodeWire(nil)) != 0 {
		t.Error("no records: not empty")
	}
}

// TestTouchedRows: the RRsets a signing touches, encoded from the zone's
// wire form, are what rrsetOf and encodeRRs make of them: the rows of the
// database are the same as through miekg/dns values.
func TestTouchedRows(t *testing.T) {
	const origin = "example.com."
	var text strings.Builder
	text.WriteString("$ORIGIN example.com.\n@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ 3600 IN NS ns1\nns1 3600 IN A 192.0.2.1\n")
	text.WriteString("Www 300 IN A 192.0.2.10\nwww 300 IN A 192.0.2.11\nmail 300 IN MX 10 www\nsub 3600 IN NS ns.sub\nns.sub 3600 IN A 192.0.2.53\na.b.c 300 IN TXT \"deep\"\n")
	recs, err := zone.Parse(strings.NewReader(text.String()), origin, "test")
	if err != nil {
		t.Fatal(err)
	}
	z0, err := zone.Build(origin, recs)
	if err != nil {
		t.Fatal(err)
	}
	z0.Prepare()
	for _, p := range []sign.Policy{sign.DefaultPolicy(), func() sign.Policy { p := sign.DefaultPolicy(); p.NSEC3, p.CSK = true, false; return p }()} {
		var keys []*sign.Key
		roles := []sign.Role{sign.CSK}
		if !p.CSK {
			roles = []sign.Role{sign.KSK, sign.ZSK}
		}
		for _, r := range roles {
			k, err := sign.GenerateKey(origin, r, p, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		sg, err := sign.New(p, origin, keys)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := sg.Sign(z0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// Whole: unsigned to signed and back; one change of the signed zone.
		soa := signed.Apex.Get(dns.TypeSOA)
		old := zone.RR{Name: signed.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
		nw := zone.RR{Name: old.Name, Type: dns.TypeSOA, TTL: old.TTL, Rdata: append([]byte(nil), old.Rdata...)}
		setSerial(nw.Rdata, 2)
		add, err := zone.WireRR(mustRR(t, "New.example.com. 300 IN A 192.0.2.99"))
		if err != nil {
			t.Fatal(err)
		}
		edited, _, _, err := sg.Update(signed, []zone.RR{old}, []zone.RR{nw, add}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []struct {
			name     string
			from, to *zone.Zone
		}{{"sign", z0, signed}, {"unsign", signed, z0}, {"edit", signed, edited}} {
			d, a := zone.DiffWire(step.from, step.to)
			got := touchedRows(step.to, d, a)
			var want []setRow
			sets := map[setKey][]dns.RR{}
			for _, list := range [][]zone.RR{d, a} {
				for _, r := range list {
					k := setKey{strings.ToLower(zone.NameString(r.Name)), r.Type}
					if _, ok := sets[k]; ok {
						continue
					}
					rrs, err := rrsetOf(step.to, k.name, k.typ)
					if err != nil {
						t.Fatal(err)
					}
					sets[k] = rrs
				}
			}
			if want, err = rowsOf(sets); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("nsec3 %v, %s: %d rows, want %d", p.NSEC3, step.name, len(got), len(want))
			}
			for i := range got {
				if got[i].key != want[i].key || !bytes.Equal(got[i].data, want[i].data) || (got[i].data == nil) != (want[i].data == nil) {
					t.Errorf("nsec3 %v, %s: row %d: %v %x, want %v %x", p.NSEC3, step.name, i, got[i].key, got[i].data, want[i].key, want[i].data)
				}
			}
		}
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}
