package zone

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
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
// the heap the loaded zone holds.
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
	runtime.KeepAlive(z)
}
