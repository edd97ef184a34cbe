package zone

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// benchZone writes a zone shaped like bench/dnsbench's (hosts with A, AAAA,
// TXT and MX, CNAMEs, delegations with glue) with n hosts, or returns
// $ZONE_BENCH_FILE when set (e.g. the 1M-name zone kept by
// `go run ./bench/dnsbench -mem -out DIR`).
func benchZone(b *testing.B, n int) (origin, path string) {
	b.Helper()
	if p := os.Getenv("ZONE_BENCH_FILE"); p != "" {
		return "bench.example.", p
	}
	path = filepath.Join(b.TempDir(), "bench.zone")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprint(f, "$ORIGIN bench.example.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 3600\n@ NS ns1\n@ NS ns2\nns1 A 192.0.2.1\nns2 A 192.0.2.2\nmail A 192.0.2.3\n")
	for i := range n {
		h := fmt.Sprintf("h%d", i)
		if i%2 == 1 {
			h += fmt.Sprintf(".g%d", i)
		}
		fmt.Fprintf(f, "%s A 100.64.%d.%d\n", h, i>>8&255, i&255)
		if i%2 == 0 {
			fmt.Fprintf(f, "%s AAAA 2001:db8::%x\n", h, i&0xffff)
		}
		if i%5 == 0 {
			fmt.Fprintf(f, "%s TXT \"host %d; benchmark text record of a typical length\"\n", h, i)
		}
		if i%10 == 3 {
			fmt.Fprintf(f, "%s MX 10 mail\n", h)
		}
		if i%12 == 0 {
			fmt.Fprintf(f, "c%d CNAME %s\n", i, h)
		}
		if i%25 == 0 {
			fmt.Fprintf(f, "d%d NS ns1.d%d\nd%d NS ns2.d%d\nns1.d%d A 192.0.2.9\nns2.d%d AAAA 2001:db8::9\n", i, i, i, i, i, i)
		}
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return "bench.example.", path
}

// BenchmarkLoad loads a 100,000-host zone (or $ZONE_BENCH_FILE) and reports
// the heap the loaded zone holds, without and with the canonical order
// that transfers and changes build on first use.
func BenchmarkLoad(b *testing.B) {
	origin, path := benchZone(b, 100000)
	b.ReportAllocs()
	var z *Zone
	for b.Loop() {
		var err error
		z, err = Load(origin, path)
		if err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "MiB-live")
	// With the canonical order built (a transfer, Diff or Apply does).
	z.index()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "MiB-live-ordered")
	runtime.KeepAlive(z)
}

// benchHosts returns owners of A records of a loaded bench zone, for
// changes to make.
func benchHosts(b *testing.B, z *Zone, n int) []*Node {
	b.Helper()
	var out []*Node
	z.names.walk(func(nd *Node) {
		if len(out) < n && nd.Get(dns.TypeA) != nil && nd.Get(dns.TypeA).Len() == 1 && nd.Cut == nil {
			out = append(out, nd)
		}
	})
	if len(out) < n {
		b.Fatalf("only %d hosts", len(out))
	}
	return out
}

// soaChange returns the records that replace z's SOA with one of the next
// serial.
func soaChange(z *Zone) (del, add RR) {
	soa := z.Apex.Get(dns.TypeSOA)
	old := soa.First()
	nw := slices.Clone(old)
	binary.BigEndian.PutUint32(nw[len(nw)-20:], z.Serial+1)
	return RR{Name: z.origin, Type: dns.TypeSOA, TTL: soa.TTL, Rdata: old},
		RR{Name: z.origin, Type: dns.TypeSOA, TTL: soa.TTL, Rdata: nw}
}

// BenchmarkApply applies an IXFR of one record (delete one A, add one A,
// new SOA) to a loaded 100,000-host zone (or $ZONE_BENCH_FILE, e.g. the
// 1,000,000-name zone of dnsbench). "once" applies the same change to the
// loaded version each time (B/op is what one version adds); "chain"
// applies one change after another, each to the version the last one
// made, as a secondary does; "diff" is DiffWire of the versions before and
// after one change. first-ms is the first Apply after the load,
// which builds the canonical order the load leaves to first use.
func BenchmarkApply(b *testing.B) {
	origin, path := benchZone(b, 100000)
	z, err := Load(origin, path)
	if err != nil {
		b.Fatal(err)
	}
	hosts := benchHosts(b, z, 1000)
	change := func(z *Zone, n *Node, v byte) (del, add []RR) {
		sd, sa := soaChange(z)
		old := z.Lookup(n.Name).Get(dns.TypeA)
		a := slices.Clone(old.First())
		a[3] = v
		return []RR{sd, {Name: n.Name, Type: dns.TypeA, TTL: old.TTL, Rdata: old.First()}},
			[]RR{sa, {Name: n.Name, Type: dns.TypeA, TTL: old.TTL, Rdata: a}}
	}
	start := time.Now()
	del, add := change(z, hosts[0], 1)
	if _, err := z.Apply(del, add); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	b.Run("once", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := z.Apply(del, add); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
	})
	b.Run("diff", func(b *testing.B) {
		// DiffWire of the versions before and after the change: the
		// cost of the difference, not of the zone.
		nz, err := z.Apply(del, add)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if d, a := DiffWire(z, nz); len(d) != 2 || len(a) != 2 {
				b.Fatalf("diff %v %v", d, a)
			}
		}
	})
	b.Run("chain", func(b *testing.B) {
		cur := z
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			n := hosts[i%len(hosts)]
			del, add := change(cur, n, byte(i))
			if byte(i) == cur.Lookup(n.Name).Get(dns.TypeA).First()[3] {
				del, add = change(cur, n, byte(i)+1)
			}
			next, err := cur.Apply(del, add)
			if err != nil {
				b.Fatal(err)
			}
			cur = next
			i++
		}
	})
}
