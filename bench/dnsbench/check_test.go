package main

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAnswer(t *testing.T) {
	const (
		aa       = 0x8400 // QR, AA
		noAA     = 0x8000
		nxdomain = aa | rcodeNXDomain
	)
	soa := []byte{0}
	a := []byte{100, 64, 0, 4}
	tests := []struct {
		name    string
		q       query
		msg     *msgBuilder
		wantErr string // "" = correct answer
	}{
		{
			name: "positive",
			q:    query{Name: "H1.bench.EXAMPLE.", Type: typeA, Kind: kindPositive, WantA: netip.MustParseAddr("100.64.0.4")},
			msg:  newMsg(1, aa).question("H1.bench.EXAMPLE.", typeA).rr(1, "h1.bench.example.", nil, typeA, a),
		},
		{
			name:    "positive with the wrong address",
			q:       query{Name: "h1.bench.example.", Type: typeA, Kind: kindPositive, WantA: netip.MustParseAddr("100.64.0.8")},
			msg:     newMsg(1, aa).question("h1.bench.example.", typeA).rr(1, "h1.bench.example.", nil, typeA, a),
			wantErr: "want 100.64.0.8",
		},
		{
			name:    "question case not kept",
			q:       query{Name: "H1.bench.example.", Type: typeA, Kind: kindPositive},
			msg:     newMsg(1, aa).question("h1.bench.example.", typeA).rr(1, "h1.bench.example.", nil, typeA, a),
			wantErr: "letter case",
		},
		{
			name:    "positive without AA",
			q:       query{Name: "h1.bench.example.", Type: typeA, Kind: kindPositive},
			msg:     newMsg(1, noAA).question("h1.bench.example.", typeA).rr(1, "h1.bench.example.", nil, typeA, a),
			wantErr: "AA clear",
		},
		{
			name:    "positive answered with another type",
			q:       query{Name: "h1.bench.example.", Type: typeAAAA, Kind: kindPositive},
			msg:     newMsg(1, aa).question("h1.bench.example.", typeAAAA).rr(1, "h1.bench.example.", nil, typeA, a),
			wantErr: "no AAAA record",
		},
		{
			name: "nxdomain",
			q:    query{Name: "nx.bench.example.", Type: typeA, Kind: kindNXDomain},
			msg:  newMsg(1, nxdomain).question("nx.bench.example.", typeA).rr(2, "bench.example.", nil, typeSOA, soa),
		},
		{
			name:    "nxdomain answered REFUSED",
			q:       query{Name: "nx.bench.example.", Type: typeA, Kind: kindNXDomain},
			msg:     newMsg(1, noAA|5).question("nx.bench.example.", typeA),
			wantErr: "rcode 5",
		},
		{
			name: "nodata",
			q:    query{Name: "h1.bench.example.", Type: typeSRV, Kind: kindNoData},
			msg:  newMsg(1, aa).question("h1.bench.example.", typeSRV).rr(2, "bench.example.", nil, typeSOA, soa),
		},
		{
			name:    "nodata without SOA",
			q:       query{Name: "h1.bench.example.", Type: typeSRV, Kind: kindNoData},
			msg:     newMsg(1, aa).question("h1.bench.example.", typeSRV),
			wantErr: "no SOA",
		},
		{
			name: "cname chased in zone",
			q:    query{Name: "C1.bench.example.", Type: typeA, Kind: kindCNAME},
			msg: newMsg(1, aa).question("C1.bench.example.", typeA).
				rr(1, "c1.bench.example.", nil, typeCNAME, wireName("h1.bench.example.")).
				rr(1, "h1.bench.example.", nil, typeA, a),
		},
		{
			name: "cname not chased in zone",
			q:    query{Name: "c1.bench.example.", Type: typeA, Kind: kindCNAME},
			msg: newMsg(1, aa).question("c1.bench.example.", typeA).
				rr(1, "c1.bench.example.", nil, typeCNAME, wireName("h1.bench.example.")),
			wantErr: "not followed",
		},
		{
			name: "cname out of zone",
			q:    query{Name: "c7.bench.example.", Type: typeA, Kind: kindCNAME},
			msg: newMsg(1, aa).question("c7.bench.example.", typeA).
				rr(1, "c7.bench.example.", nil, typeCNAME, wireName("www7.example.net.")),
		},
		{
			name: "referral",
			q:    query{Name: "www.d1.bench.example.", Type: typeA, Kind: kindReferral},
			msg: newMsg(1, noAA).question("www.d1.bench.example.", typeA).
				rr(2, "d1.bench.example.", nil, typeNS, wireName("ns1.d1.bench.example.")).
				rr(3, "ns1.d1.bench.example.", nil, typeA, a),
		},
		{
			name: "referral with AA",
			q:    query{Name: "www.d1.bench.example.", Type: typeA, Kind: kindReferral},
			msg: newMsg(1, aa).question("www.d1.bench.example.", typeA).
				rr(2, "d1.bench.example.", nil, typeNS, wireName("ns1.d1.bench.example.")).
				rr(3, "ns1.d1.bench.example.", nil, typeA, a),
			wantErr: "AA set",
		},
		{
			name: "referral without glue",
			q:    query{Name: "www.d1.bench.example.", Type: typeA, Kind: kindReferral},
			msg: newMsg(1, noAA).question("www.d1.bench.example.", typeA).
				rr(2, "d1.bench.example.", nil, typeNS, wireName("ns1.d1.bench.example.")),
			wantErr: "without glue",
		},
		{
			name: "wildcard",
			q:    query{Name: "W9.wild.bench.example.", Type: typeTXT, Kind: kindWildcard},
			msg: newMsg(1, aa).question("W9.wild.bench.example.", typeTXT).
				rr(1, "w9.wild.bench.example.", nil, typeTXT, []byte{1, 'x'}),
		},
		{
			name: "wildcard answered with the wildcard owner",
			q:    query{Name: "w9.wild.bench.example.", Type: typeTXT, Kind: kindWildcard},
			msg: newMsg(1, aa).question("w9.wild.bench.example.", typeTXT).
				rr(1, "*.wild.bench.example.", nil, typeTXT, []byte{1, 'x'}),
			wantErr: "owned by the query name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMessage(tt.msg.bytes())
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
	addr, err := freePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	refuse := func(q []byte) []byte {
		r := append([]byte(nil), q...)
		r[2] |= 0x80         // QR
		r[3] = r[3]&0xf0 | 5 // REFUSED
		return r
	}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(refuse(buf[:n]), from)
		}
	}()
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
