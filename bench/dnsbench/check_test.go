package main

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func TestCheckAnswer(t *testing.T) {
	const (
		aa       = 0x8400 // QR, AA
		noAA     = 0x8000
		nxdomain = aa | benchkit.RCodeNXDomain
	)
	soa := []byte{0}
	a := []byte{100, 64, 0, 4}
	tests := []struct {
		name    string
		q       query
		msg     *benchkit.MsgBuilder
		wantErr string // "" = correct answer
	}{
		{
			name: "positive",
			q:    query{Name: "H1.bench.EXAMPLE.", Type: benchkit.TypeA, Kind: kindPositive, WantA: netip.MustParseAddr("100.64.0.4")},
			msg:  benchkit.NewMsg(1, aa).Question("H1.bench.EXAMPLE.", benchkit.TypeA).RR(1, "h1.bench.example.", nil, benchkit.TypeA, a),
		},
		{
			name:    "positive with the wrong address",
			q:       query{Name: "h1.bench.example.", Type: benchkit.TypeA, Kind: kindPositive, WantA: netip.MustParseAddr("100.64.0.8")},
			msg:     benchkit.NewMsg(1, aa).Question("h1.bench.example.", benchkit.TypeA).RR(1, "h1.bench.example.", nil, benchkit.TypeA, a),
			wantErr: "want 100.64.0.8",
		},
		{
			name:    "question case not kept",
			q:       query{Name: "H1.bench.example.", Type: benchkit.TypeA, Kind: kindPositive},
			msg:     benchkit.NewMsg(1, aa).Question("h1.bench.example.", benchkit.TypeA).RR(1, "h1.bench.example.", nil, benchkit.TypeA, a),
			wantErr: "letter case",
		},
		{
			name:    "positive without AA",
			q:       query{Name: "h1.bench.example.", Type: benchkit.TypeA, Kind: kindPositive},
			msg:     benchkit.NewMsg(1, noAA).Question("h1.bench.example.", benchkit.TypeA).RR(1, "h1.bench.example.", nil, benchkit.TypeA, a),
			wantErr: "AA clear",
		},
		{
			name:    "positive answered with another type",
			q:       query{Name: "h1.bench.example.", Type: benchkit.TypeAAAA, Kind: kindPositive},
			msg:     benchkit.NewMsg(1, aa).Question("h1.bench.example.", benchkit.TypeAAAA).RR(1, "h1.bench.example.", nil, benchkit.TypeA, a),
			wantErr: "no AAAA record",
		},
		{
			name: "nxdomain",
			q:    query{Name: "nx.bench.example.", Type: benchkit.TypeA, Kind: kindNXDomain},
			msg:  benchkit.NewMsg(1, nxdomain).Question("nx.bench.example.", benchkit.TypeA).RR(2, "bench.example.", nil, benchkit.TypeSOA, soa),
		},
		{
			name:    "nxdomain answered REFUSED",
			q:       query{Name: "nx.bench.example.", Type: benchkit.TypeA, Kind: kindNXDomain},
			msg:     benchkit.NewMsg(1, noAA|5).Question("nx.bench.example.", benchkit.TypeA),
			wantErr: "rcode 5",
		},
		{
			name: "nodata",
			q:    query{Name: "h1.bench.example.", Type: benchkit.TypeSRV, Kind: kindNoData},
			msg:  benchkit.NewMsg(1, aa).Question("h1.bench.example.", benchkit.TypeSRV).RR(2, "bench.example.", nil, benchkit.TypeSOA, soa),
		},
		{
			name:    "nodata without SOA",
			q:       query{Name: "h1.bench.example.", Type: benchkit.TypeSRV, Kind: kindNoData},
			msg:     benchkit.NewMsg(1, aa).Question("h1.bench.example.", benchkit.TypeSRV),
			wantErr: "no SOA",
		},
		{
			name: "cname chased in zone",
			q:    query{Name: "C1.bench.example.", Type: benchkit.TypeA, Kind: kindCNAME},
			msg: benchkit.NewMsg(1, aa).Question("C1.bench.example.", benchkit.TypeA).
				RR(1, "c1.bench.example.", nil, benchkit.TypeCNAME, benchkit.WireName("h1.bench.example.")).
				RR(1, "h1.bench.example.", nil, benchkit.TypeA, a),
		},
		{
			name: "cname not chased in zone",
			q:    query{Name: "c1.bench.example.", Type: benchkit.TypeA, Kind: kindCNAME},
			msg: benchkit.NewMsg(1, aa).Question("c1.bench.example.", benchkit.TypeA).
				RR(1, "c1.bench.example.", nil, benchkit.TypeCNAME, benchkit.WireName("h1.bench.example.")),
			wantErr: "not followed",
		},
		{
			name: "cname out of zone",
			q:    query{Name: "c7.bench.example.", Type: benchkit.TypeA, Kind: kindCNAME},
			msg: benchkit.NewMsg(1, aa).Question("c7.bench.example.", benchkit.TypeA).
				RR(1, "c7.bench.example.", nil, benchkit.TypeCNAME, benchkit.WireName("www7.example.net.")),
		},
		{
			name: "referral",
			q:    query{Name: "www.d1.bench.example.", Type: benchkit.TypeA, Kind: kindReferral},
			msg: benchkit.NewMsg(1, noAA).Question("www.d1.bench.example.", benchkit.TypeA).
				RR(2, "d1.bench.example.", nil, benchkit.TypeNS, benchkit.WireName("ns1.d1.bench.example.")).
				RR(3, "ns1.d1.bench.example.", nil, benchkit.TypeA, a),
		},
		{
			name: "referral with AA",
			q:    query{Name: "www.d1.bench.example.", Type: benchkit.TypeA, Kind: kindReferral},
			msg: benchkit.NewMsg(1, aa).Question("www.d1.bench.example.", benchkit.TypeA).
				RR(2, "d1.bench.example.", nil, benchkit.TypeNS, benchkit.WireName("ns1.d1.bench.example.")).
				RR(3, "ns1.d1.bench.example.", nil, benchkit.TypeA, a),
			wantErr: "AA set",
		},
		{
			name: "referral without glue",
			q:    query{Name: "www.d1.bench.example.", Type: benchkit.TypeA, Kind: kindReferral},
			msg: benchkit.NewMsg(1, noAA).Question("www.d1.bench.example.", benchkit.TypeA).
				RR(2, "d1.bench.example.", nil, benchkit.TypeNS, benchkit.WireName("ns1.d1.bench.example.")),
			wantErr: "without glue",
		},
		{
			name: "wildcard",
			q:    query{Name: "W9.wild.bench.example.", Type: benchkit.TypeTXT, Kind: kindWildcard},
			msg: benchkit.NewMsg(1, aa).Question("W9.wild.bench.example.", benchkit.TypeTXT).
				RR(1, "w9.wild.bench.example.", nil, benchkit.TypeTXT, []byte{1, 'x'}),
		},
		{
			name: "wildcard answered with the wildcard owner",
			q:    query{Name: "w9.wild.bench.example.", Type: benchkit.TypeTXT, Kind: kindWildcard},
			msg: benchkit.NewMsg(1, aa).Question("w9.wild.bench.example.", benchkit.TypeTXT).
				RR(1, "*.wild.bench.example.", nil, benchkit.TypeTXT, []byte{1, 'x'}),
			wantErr: "owned by the query name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := benchkit.ParseMessage(tt.msg.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			err = checkAnswer(tt.q, m)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkAnswer = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkAnswer = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// refuser answers every query over UDP and TCP on one port with REFUSED.
func refuser(t *testing.T) netip.AddrPort {
	t.Helper()
	addr, err := benchkit.FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	refuse := func(q []byte) []byte {
		r := append([]byte(nil), q...)
		r[2] |= 0x80         // QR
		r[3] = r[3]&0xf0 | 5 // REFUSED
		return r
	}
	benchkit.ServeUDP(t, addr, refuse)
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					r := refuse(q)
					_, _ = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
				}
			}()
		}
	}()
	return addr
}

func TestCheckServerCountsWrongAnswers(t *testing.T) {
	zd, err := generate(genConfig{Origin: "bench.example.", Names: 1000, Queries: 2000, Seed: 1}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := checkServer(refuser(t), zd)
	if err != nil {
		t.Fatal(err)
	}
	want := 2 * int(numKinds) * samplesPerKind
	if res.Checked != want || res.Wrong != want || len(res.Examples) != 5 {
		t.Errorf("checked %d, wrong %d, %d examples; want %d, %d, 5", res.Checked, res.Wrong, len(res.Examples), want, want)
	}
	if !strings.HasPrefix(res.Examples[0], "udp positive") || !strings.Contains(res.Examples[0], "rcode 5") {
		t.Errorf("first example %q", res.Examples[0])
	}
}
