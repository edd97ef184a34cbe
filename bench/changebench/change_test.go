package main

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func TestPlanChanges(t *testing.T) {
	dir := t.TempDir()
	z, err := benchkit.GenerateZone("bench.example.", 2000, dir)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := planChanges(z.Layout, 100)
	if err != nil {
		t.Fatal(err)
	}
	zone, err := os.ReadFile(z.ZonePath)
	if err != nil {
		t.Fatal(err)
	}
	// The A records of each name in the zone file.
	aRecords := map[string][]string{}
	for line := range strings.SplitSeq(string(zone), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == "A" {
			aRecords[f[0]] = append(aRecords[f[0]], f[2])
		}
	}
	names, addrs := map[string]bool{}, map[netip.Addr]bool{}
	newRange := netip.MustParsePrefix("198.18.0.0/15")
	for i, c := range changes {
		if got := aRecords[c.Name]; len(got) != 1 || got[0] != c.Old.String() {
			t.Errorf("change %d: %s has A records %v in the zone, want only %v", i, c.Name, got, c.Old)
		}
		if names[c.Name] || addrs[c.New] {
			t.Errorf("change %d: %s -> %v repeats a name or an address", i, c.Name, c.New)
		}
		names[c.Name], addrs[c.New] = true, true
		if !newRange.Contains(c.New) || c.New == c.Old {
			t.Errorf("change %d: new address %v, want one in %v other than %v", i, c.New, newRange, c.Old)
		}
	}
	if changes[0].Name == changes[1].Name || len(changes) != 100 {
		t.Errorf("%d changes, first two %v %v", len(changes), changes[0], changes[1])
	}
	// Spread over the zone: the last change is in its last hundredth.
	num, _, _ := strings.Cut(strings.TrimPrefix(changes[99].Name, "h"), ".")
	if i, err := strconv.Atoi(num); err != nil || i < z.Layout.Hosts*98/100 {
		t.Errorf("last change at %s, want near the end of the %d hosts", changes[99].Name, z.Layout.Hosts)
	}
	for _, names := range []int{2000, 1_000_000} {
		l, _ := benchkit.NewLayout(names)
		for _, n := range []int{1, 100, l.Hosts / 4} {
			if c, err := planChanges(l, min(n, maxChanges)); err != nil || len(c) != min(n, maxChanges) {
				t.Errorf("planChanges(%d) on %d hosts: %d changes, %v", n, l.Hosts, len(c), err)
			}
		}
	}
	for _, n := range []int{0, maxChanges + 1, z.Layout.Hosts/4 + 1} {
		if _, err := planChanges(z.Layout, n); err == nil {
			t.Errorf("planChanges(%d) on %d hosts succeeded", n, z.Layout.Hosts)
		}
	}
}

func TestAnswers(t *testing.T) {
	const qname = "h2.bench.example."
	want := netip.MustParseAddr("198.18.0.1")
	a := want.AsSlice()
	old := []byte{100, 64, 0, 8}
	const aa, nxdomain = 0x8400, 0x8403
	tests := []struct {
		name string
		msg  *benchkit.MsgBuilder
		want bool
	}{
		{"the new address", benchkit.NewMsg(1, aa).Question("H2.bench.example.", benchkit.TypeA).RR(1, qname, nil, benchkit.TypeA, a), true},
		{"the old address", benchkit.NewMsg(1, aa).Question(qname, benchkit.TypeA).RR(1, qname, nil, benchkit.TypeA, old), false},
		{"old and new", benchkit.NewMsg(1, aa).Question(qname, benchkit.TypeA).
			RR(1, qname, nil, benchkit.TypeA, old).RR(1, qname, nil, benchkit.TypeA, a), false},
		{"not authoritative", benchkit.NewMsg(1, 0x8000).Question(qname, benchkit.TypeA).RR(1, qname, nil, benchkit.TypeA, a), false},
		{"not a response", benchkit.NewMsg(1, 0x0400).Question(qname, benchkit.TypeA).RR(1, qname, nil, benchkit.TypeA, a), false},
		{"nxdomain", benchkit.NewMsg(1, nxdomain).Question(qname, benchkit.TypeA), false},
		{"another owner", benchkit.NewMsg(1, aa).Question(qname, benchkit.TypeA).RR(1, "h3.bench.example.", nil, benchkit.TypeA, a), false},
		{"no answer", benchkit.NewMsg(1, aa).Question(qname, benchkit.TypeA), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := benchkit.ParseMessage(tt.msg.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if got := answers(m, qname, want); got != tt.want {
				t.Errorf("answers = %v, want %v", got, tt.want)
			}
		})
	}
}

// fakeServer answers A queries on loopback with old until switchAt, then
// with new; it counts the queries.
func fakeServer(t *testing.T, old, new netip.Addr, switchAt time.Time) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	var queries atomic.Int64
	addr := benchkit.ServeUDP(t, netip.MustParseAddrPort("127.0.0.1:0"), func(b []byte) []byte {
		q, err := benchkit.ParseMessage(b)
		if err != nil {
			return nil
		}
		queries.Add(1)
		a := old
		if !time.Now().Before(switchAt) {
			a = new
		}
		return benchkit.NewMsg(q.ID, 0x8400).Question("h2.bench.example.", benchkit.TypeA).
			RR(1, "h2.bench.example.", nil, benchkit.TypeA, a.AsSlice()).Bytes()
	})
	return addr, &queries
}

func TestAwaitAnswer(t *testing.T) {
	old, new := netip.MustParseAddr("100.64.0.8"), netip.MustParseAddr("198.18.0.1")
	start := time.Now()
	switchAt := start.Add(150 * time.Millisecond)
	addr, queries := fakeServer(t, old, new, switchAt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at, err := awaitAnswer(ctx, addr, "h2.bench.example.", new, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The first answer with the new address came after the switch and,
	// polling every millisecond, soon after it (generous for a busy host).
	if at.Before(switchAt) || at.Sub(switchAt) > 100*time.Millisecond {
		t.Errorf("answered %v after the switch, want within a few ms", at.Sub(switchAt))
	}
	// About one query a millisecond: 150 before the switch.
	if n := queries.Load(); n < 30 || n > 400 {
		t.Errorf("%d queries in %v, want about one a millisecond", n, at.Sub(start))
	}
}

func TestAwaitAnswerTimesOut(t *testing.T) {
	old, new := netip.MustParseAddr("100.64.0.8"), netip.MustParseAddr("198.18.0.1")
	addr, _ := fakeServer(t, old, new, time.Now().Add(time.Hour))
	// A port nobody listens on: the queries are refused (ICMP).
	free, err := benchkit.FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]netip.AddrPort{"old data": addr, "nobody listening": free} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := awaitAnswer(ctx, a, "h2.bench.example.", new, time.Millisecond)
			if !errors.Is(err, errNotAnswered) {
				t.Errorf("err = %v, want errNotAnswered", err)
			}
			if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
				t.Errorf("gave up after %v, want at the 100ms timeout", d)
			}
		})
	}
}
