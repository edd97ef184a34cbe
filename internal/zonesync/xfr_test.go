package zonesync

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

func rrs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

func soaLine(serial uint32) string {
	return fmt.Sprintf("example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. %d 3600 600 86400 300", serial)
}

func TestParser(t *testing.T) {
	ns := "example.com. 3600 IN NS ns1.example.com."
	a := "ns1.example.com. 3600 IN A 192.0.2.1"
	b := "b.example.com. 60 IN A 192.0.2.2"
	tests := []struct {
		name    string
		have    uint32 // 0 = AXFR
		in      []string
		kind    xfrKind
		done    bool
		deltas  int
		full    int
		wantErr error
		errSub  string
	}{
		{"axfr", 0, []string{soaLine(5), ns, a, soaLine(5)}, kindFull, true, 0, 3, nil, ""},
		{"axfr incomplete", 0, []string{soaLine(5), ns, a}, kindFull, false, 0, 3, nil, ""},
		{"axfr closing serial differs", 0, []string{soaLine(5), ns, soaLine(6)}, 0, false, 0, 0, ErrStream, "closing SOA"},
		{"axfr not starting with SOA", 0, []string{ns, soaLine(5)}, 0, false, 0, 0, ErrStream, "not the SOA"},
		{"SOA of another zone", 0, []string{soaLine(5), "x.example.com. 3600 IN SOA a. b. 1 1 1 1 1"}, 0, false, 0, 0, ErrStream, "SOA of x.example.com."},
		{"record after the end", 0, []string{soaLine(5), ns, soaLine(5), a}, 0, false, 0, 0, ErrStream, "after the end"},
		{"ixfr up to date", 5, []string{soaLine(5)}, kindUpToDate, true, 0, 0, nil, ""},
		{"ixfr primary older", 5, []string{soaLine(4)}, kindUpToDate, true, 0, 0, nil, ""},
		{"ixfr serial wrapped is newer", 0xfffffff0, []string{soaLine(3), soaLine(0xfffffff0), soaLine(3), b, soaLine(3)}, kindDelta, true, 1, 0, nil, ""},
		{"ixfr up to date then junk", 5, []string{soaLine(5), ns}, 0, false, 0, 0, ErrStream, "after the end"},
		{"ixfr axfr-style", 4, []string{soaLine(5), ns, a, soaLine(5)}, kindFull, true, 0, 3, nil, ""},
		{"ixfr two steps", 3, []string{soaLine(5), soaLine(3), a, soaLine(4), b, soaLine(4), b, soaLine(5), soaLine(5)}, kindDelta, true, 2, 0, nil, ""},
		{"ixfr pure deletion", 4, []string{soaLine(5), soaLine(4), b, soaLine(5), soaLine(5)}, kindDelta, true, 1, 0, nil, ""},
		{"ixfr incomplete", 4, []string{soaLine(5), soaLine(4), b, soaLine(5)}, kindDelta, false, 1, 0, nil, ""},
		{"ixfr from another serial", 3, []string{soaLine(5), soaLine(2), soaLine(5), soaLine(5)}, 0, false, 0, 0, ErrDiverged, "starts at serial 2"},
		{"ixfr broken chain", 3, []string{soaLine(5), soaLine(3), soaLine(4), soaLine(6), soaLine(5), soaLine(5)}, 0, false, 0, 0, ErrStream, "ended at 4"},
		{"ixfr step backwards", 3, []string{soaLine(5), soaLine(3), soaLine(2)}, 0, false, 0, 0, ErrStream, "backwards"},
		{"ixfr ends at the wrong serial", 3, []string{soaLine(5), soaLine(3), soaLine(4), soaLine(5)}, 0, false, 0, 0, ErrStream, "after a step that ended at 4"},
		{"too many records", 0, []string{soaLine(5), ns, a, b, b, b}, 0, false, 0, 0, ErrStream, "more than 4 records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var have *dns.SOA
			if tt.have != 0 {
				have = rrs(t, soaLine(tt.have))[0].(*dns.SOA)
			}
			p := newParser("Example.COM", have, 4+map[bool]int{true: 0, false: 100}[tt.name == "too many records"])
			err := p.feed(rrs(t, tt.in...))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.kind != tt.kind || p.done != tt.done || len(p.deltas) != tt.deltas || len(p.full) != tt.full {
				t.Errorf("kind %s done %t deltas %d full %d; want %s %t %d %d", p.kind, p.done, len(p.deltas), len(p.full), tt.kind, tt.done, tt.deltas, tt.full)
			}
		})
	}
}

func TestApplySteps(t *testing.T) {
	base, err := zone.FromRecords(origin, rrs(t, soaLine(1),
		"example.com. 3600 IN NS NS1.Example.COM.",
		"example.com. 3600 IN NS ns2.example.com.",
		"ns1.example.com. 3600 IN A 192.0.2.1",
		"ns2.example.com. 3600 IN A 192.0.2.2",
		"www.example.com. 300 IN A 192.0.2.80",
		"example.com. 300 IN MX 65 mail.example.com.",
	), "test")
	if err != nil {
		t.Fatal(err)
	}
	before, err := base.RRs()
	if err != nil {
		t.Fatal(err)
	}
	step := func(from, to uint32, del, add []string) delta {
		return delta{
			from: rrs(t, soaLine(from))[0].(*dns.SOA), to: rrs(t, soaLine(to))[0].(*dns.SOA),
			del: rrs(t, del...), add: rrs(t, add...),
		}
	}
	tests := []struct {
		name    string
		deltas  []delta
		want    []string // besides the SOA, in canonical order
		wantErr error
		errText string
	}{
		{"names compare without case, TTL ignored", []delta{step(1, 2,
			[]string{"example.com. 99 IN NS ns1.example.com.", "WWW.example.com. 1 IN A 192.0.2.80"},
			[]string{"www.example.com. 300 IN A 192.0.2.81"})},
			[]string{"example.com.\t3600\tIN\tNS\tns2.example.com.", "example.com.\t300\tIN\tMX\t65 mail.example.com.", "ns1.example.com.\t3600\tIN\tA\t192.0.2.1", "ns2.example.com.\t3600\tIN\tA\t192.0.2.2", "www.example.com.\t300\tIN\tA\t192.0.2.81"}, nil, ""},
		{"TTL change replaces", []delta{step(1, 2, nil, []string{"www.example.com. 60 IN A 192.0.2.80"})},
			[]string{"example.com.\t3600\tIN\tNS\tNS1.Example.COM.", "example.com.\t3600\tIN\tNS\tns2.example.com.", "example.com.\t300\tIN\tMX\t65 mail.example.com.", "ns1.example.com.\t3600\tIN\tA\t192.0.2.1", "ns2.example.com.\t3600\tIN\tA\t192.0.2.2", "www.example.com.\t60\tIN\tA\t192.0.2.80"}, nil, ""},
		{"preference is not a name: MX 97 is another record", []delta{step(1, 2, []string{"example.com. 300 IN MX 97 mail.example.com."}, nil)}, nil, ErrDiverged, "MX\t97"},
		{"delete then re-add over two steps", []delta{
			step(1, 2, []string{"www.example.com. 300 IN A 192.0.2.80"}, nil),
			step(2, 3, nil, []string{"www.example.com. 300 IN A 192.0.2.80"}),
		}, []string{"example.com.\t3600\tIN\tNS\tNS1.Example.COM.", "example.com.\t3600\tIN\tNS\tns2.example.com.", "example.com.\t300\tIN\tMX\t65 mail.example.com.", "ns1.example.com.\t3600\tIN\tA\t192.0.2.1", "ns2.example.com.\t3600\tIN\tA\t192.0.2.2", "www.example.com.\t300\tIN\tA\t192.0.2.80"}, nil, ""},
		{"step from another serial", []delta{step(2, 3, nil, nil)}, nil, ErrDiverged, "step from serial 2, we are at 1"},
		{"delete twice", []delta{
			step(1, 2, []string{"www.example.com. 300 IN A 192.0.2.80"}, nil),
			step(2, 3, []string{"www.example.com. 300 IN A 192.0.2.80"}, nil),
		}, nil, ErrDiverged, "serial 2→3: zone example.com.: delete www.example.com.\t300\tIN\tA\t192.0.2.80: record to delete is not in the zone"},
		{"a step that makes the zone invalid", []delta{step(1, 2, nil, []string{"www.example.com. 300 IN CNAME ns1.example.com."})},
			nil, zone.ErrInvalid, "www.example.com. A: CNAME and other data at the same name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := applySteps(base, tt.deltas)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Serial != tt.deltas[len(tt.deltas)-1].to.Serial {
				t.Errorf("serial %d", got.Serial)
			}
			// A name the steps do not touch is the same node: the new
			// version shares it, nothing was rebuilt.
			ns1, _ := zone.NameWire("ns1.example.com.")
			if got.Lookup(ns1) != base.Lookup(ns1) {
				t.Error("an untouched node was copied")
			}
			rrs, err := got.RRs()
			if err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, rr := range rrs[1:] {
				lines = append(lines, rr.String())
			}
			if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	// The version the steps started from is untouched.
	after, err := base.RRs()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Error("applying steps changed the version they started from")
	}
}

// FuzzTransfer feeds transfer responses (DNS messages, each preceded by a
// two-byte length as on TCP) through the parser and, when they complete,
// builds the zone from them: nothing may panic, and a completed IXFR either
// applies or reports why not.
func FuzzTransfer(f *testing.F) {
	base := makeZone(f, 10)
	next := makeZone(f, 11, "new.example.com. 60 IN TXT \"x\"")
	del, add, err := zone.Diff(base, next)
	if err != nil {
		f.Fatal(err)
	}
	nextRRs, err := next.RRs()
	if err != nil {
		f.Fatal(err)
	}
	seed := func(ixfr bool, perMsg int, stream []dns.RR) {
		var out []byte
		for len(stream) > 0 {
			n := min(perMsg, len(stream))
			m := new(dns.Msg)
			m.Response = true
			m.Answer = stream[:n]
			stream = stream[n:]
			p, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, byte(len(p)>>8), byte(len(p)))
			out = append(out, p...)
		}
		f.Add(ixfr, out)
	}
	soa := next.SOA()
	seed(false, 5, append(nextRRs, soa))
	seed(true, 3, append(append(append([]dns.RR{soa}, del...), add...), soa))
	seed(true, 1, []dns.RR{base.SOA()})
	seed(true, 50, append(nextRRs, soa))
	f.Fuzz(func(t *testing.T, ixfr bool, data []byte) {
		var have *dns.SOA
		if ixfr {
			have = base.SOA()
		}
		p := newParser(origin, have, 10000)
		for len(data) >= 2 && !p.done {
			n := int(data[0])<<8 | int(data[1])
			data = data[2:]
			if n > len(data) {
				return
			}
			var m dns.Msg
			if m.Unpack(data[:n]) != nil {
				return
			}
			data = data[n:]
			if p.feed(m.Answer) != nil {
				return
			}
		}
		if !p.done {
			return
		}
		switch p.kind {
		case kindFull:
			_, _ = zone.FromRecords(origin, p.full, "fuzz")
		case kindDelta:
			nz, err := applySteps(base, p.deltas)
			if err != nil {
				if !errors.Is(err, ErrDiverged) && !errors.Is(err, ErrStream) && !errors.Is(err, zone.ErrInvalid) {
					t.Fatalf("applySteps: unexpected error kind: %v", err)
				}
				return
			}
			if nz.Serial != p.first.Serial {
				t.Fatalf("applied IXFR ends at serial %d, announced %d", nz.Serial, p.first.Serial)
			}
		case kindUpToDate:
			if zone.SerialLess(have.Serial, p.first.Serial) {
				t.Fatalf("up to date with a newer serial %d", p.first.Serial)
			}
		}
	})
}
