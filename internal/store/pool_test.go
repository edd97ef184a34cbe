package store_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/store"
)

// poolRecord is a TypePool record at owner for type t.
func poolRecord(t testing.TB, owner string, typ uint16, addrs ...string) dns.RR {
	t.Helper()
	p := steer.Pool{TTL: 30, Policy: []string{"up", "first-n"}}
	for _, a := range addrs {
		p.Endpoints = append(p.Endpoints, steer.Endpoint{Address: netip.MustParseAddr(a)})
	}
	rd, err := steer.Encode(typ, p)
	if err != nil {
		t.Fatal(err)
	}
	return &dns.RFC3597{Hdr: dns.RR_Header{Name: owner, Rrtype: steer.TypePool, Class: dns.ClassINET, Ttl: 30}, Rdata: hex.EncodeToString(rd)}
}

func rawPool(owner, hexRdata string) dns.RR {
	return &dns.RFC3597{Hdr: dns.RR_Header{Name: owner, Rrtype: steer.TypePool, Class: dns.ClassINET, Ttl: 30}, Rdata: hexRdata}
}

// TestPoolsStored: pools are kept as records of their zone: written, read
// back after a reopen, and in the change log the nodes' IXFR is served from.
func TestPoolsStored(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := open(t, dir)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), store.SerialIncrement); err != nil {
		t.Fatal(err)
	}
	a, v6 := poolRecord(t, "svc.example.com.", dns.TypeA, "192.0.2.1", "192.0.2.2"), poolRecord(t, "svc.example.com.", dns.TypeAAAA, "2001:db8::1")
	serial, err := s.SetRRset(ctx, "example.com.", "svc.example.com.", steer.TypePool, []dns.RR{a, v6})
	if err != nil {
		t.Fatal(err)
	}
	chs, err := s.Changes(ctx, "example.com.", serial-1)
	if err != nil || len(chs) != 1 || len(chs[0].Add) != 3 { // the SOA and the two pools
		t.Fatalf("change log %+v, %v", chs, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	got, err := s.RRset(ctx, "example.com.", "svc.example.com.", steer.TypePool)
	if err != nil || len(got) != 2 {
		t.Fatalf("after reopen: %v %v", got, err)
	}
	for _, rr := range got {
		rd, _ := hex.DecodeString(rr.(*dns.RFC3597).Rdata)
		if _, p, err := steer.Decode(rd); err != nil || p.TTL != 30 {
			t.Fatalf("after reopen: %v %v", p, err)
		}
	}
}

// TestPoolsRefused: the store holds only pools a node can serve, from any
// path (RRset write, creation, import), and none in a signed zone.
func TestPoolsRefused(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), store.SerialIncrement); err != nil {
		t.Fatal(err)
	}
	badJSON := hex.EncodeToString(append([]byte{0, 1, 1}, `{"endpoints":[]}`...))
	for _, tt := range []struct {
		name string
		set  []dns.RR
		want string
	}{
		{"not a pool", []dns.RR{rawPool("svc.example.com.", "0001")}, "records[0]: svc.example.com. pool: bad pool record: 2 bytes"},
		{"invalid pool", []dns.RR{rawPool("svc.example.com.", badJSON)}, "endpoints: 0 given"},
		{"two pools for A", []dns.RR{poolRecord(t, "svc.example.com.", dns.TypeA, "192.0.2.1"), poolRecord(t, "svc.example.com.", dns.TypeA, "192.0.2.2")},
			"a second pool for type A (the first is zone example.com.: rrset svc.example.com. TYPE65320: records[0])"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.SetRRset(ctx, "example.com.", "svc.example.com.", steer.TypePool, tt.set)
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalid with %q", err, tt.want)
			}
		})
	}
	text := func(extra string) string {
		return "$ORIGIN example.net.\n@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ 3600 IN NS ns1\nns1 3600 IN A 192.0.2.1\n" + extra
	}
	good := poolRecord(t, "svc.example.net.", dns.TypeA, "192.0.2.1").String()
	if _, err := s.CreateZoneFromText(ctx, "example.net.", strings.NewReader(text(good+"\n")), store.SerialIncrement); err != nil {
		t.Fatalf("import with a pool: %v", err)
	}
	_, err := s.ImportZone(ctx, "example.net.", strings.NewReader(text(fmt.Sprintf("svc 30 IN TYPE65320 \\# %d %s\n", len(badJSON)/2, badJSON))))
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "zonefile:5: svc.example.net. pool: invalid pool: endpoints: 0 given") {
		t.Fatalf("import of a bad pool: %v", err)
	}
	signed := text(good + "\n@ 3600 IN DNSKEY 257 3 15 8Hymdopk5TfD9pt77J3HwAabPR/tQOxi/VKPtl+ybYI=\n")
	_, err = s.ImportZone(ctx, "example.net.", strings.NewReader(signed))
	if !errors.Is(err, store.ErrSigned) || !strings.Contains(err.Error(), "1 pool records in zone text signed elsewhere (it has DNSKEY records)") {
		t.Fatalf("import of signed text with a pool: %v", err)
	}
	if _, err := s.CreateZone(ctx, "example.org.", append(rrs(t,
		"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 1 7200 3600 1209600 300",
		"example.org. 3600 IN NS ns1.example.org.",
		"ns1.example.org. 3600 IN A 192.0.2.1",
	), rawPool("x.example.org.", "00")), store.SerialIncrement); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("create with a bad pool: %v", err)
	}
}
