package sign

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// benchNames is the size of the zone the signing benchmarks sign:
// $SIGN_BENCH_NAMES owner names, 1,000,000 by default.
func benchNames(b *testing.B) int {
	if s := os.Getenv("SIGN_BENCH_NAMES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			b.Fatalf("SIGN_BENCH_NAMES=%q: want a number of names, at least 100", s)
		}
		return n
	}
	return 1_000_000
}

// writeBenchZone writes a zone of about names owner names: hosts with A,
// AAAA on every second, TXT on every fifth, MX on every tenth, and every
// 25th a delegation with glue below it (two names).
func writeBenchZone(b *testing.B, dir string, names int) string {
	b.Helper()
	path := filepath.Join(dir, "bench.example.zone")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprint(w, "$ORIGIN bench.example.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 3600\n@ NS ns1\n@ NS ns2\nns1 A 192.0.2.1\nns2 A 192.0.2.2\nmail A 192.0.2.3\n")
	for i, n := 0, 4; n < names; i++ {
		if i%25 == 24 {
			fmt.Fprintf(w, "d%d NS ns.d%d\nns.d%d A 192.0.2.9\n", i, i, i)
			n += 2
			continue
		}
		fmt.Fprintf(w, "h%d A 100.64.%d.%d\n", i, i>>8&255, i&255)
		if i%2 == 0 {
			fmt.Fprintf(w, "h%d AAAA 2001:db8::%x\n", i, i&0xffff)
		}
		if i%5 == 0 {
			fmt.Fprintf(w, "h%d TXT \"host %d\"\n", i, i)
		}
		if i%10 == 3 {
			fmt.Fprintf(w, "h%d MX 10 mail\n", i)
		}
		n++
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// peakRSS returns the VmHWM of a process in MiB (self when pid is 0).
func peakRSS(pid int) float64 {
	p := "/proc/self/status"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkSign signs a zone of $SIGN_BENCH_NAMES names whole (NSEC, a
// CSK of ECDSAP256SHA256, the default policy) on GOMAXPROCS threads, and
// reports the heap the signed zone holds and the process's peak RSS. Run
// it once: go test -run '^$' -bench BenchmarkSign$ -benchtime=1x
// ./internal/sign
func BenchmarkSign(b *testing.B) {
	names := benchNames(b)
	path := writeBenchZone(b, b.TempDir(), names)
	z, err := zone.Load("bench.example.", path)
	if err != nil {
		b.Fatal(err)
	}
	z.Prepare()
	s := newSigner(b, DefaultPolicy(), "bench.example.")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	var sz *zone.Zone
	for b.Loop() {
		if sz, err = s.Sign(z, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(z.Len()), "names")
	b.ReportMetric(float64(sz.Records), "records-signed")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-signed-zone")
	b.ReportMetric(peakRSS(0), "MiB-peak-RSS")
}

// BenchmarkUpdate re-signs one change (a new name and the SOA) of a signed
// zone of $SIGN_BENCH_NAMES names.
func BenchmarkUpdate(b *testing.B) {
	path := writeBenchZone(b, b.TempDir(), benchNames(b))
	z, err := zone.Load("bench.example.", path)
	if err != nil {
		b.Fatal(err)
	}
	s := newSigner(b, DefaultPolicy(), "bench.example.")
	now := time.Now()
	sz, err := s.Sign(z, now)
	if err != nil {
		b.Fatal(err)
	}
	c := &changer{t: b}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		soa := sz.Apex.Get(dns.TypeSOA)
		old := zone.RR{Name: sz.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
		nw := old
		nw.Rdata = append([]byte(nil), old.Rdata...)
		nw.Rdata[len(nw.Rdata)-17]++
		i++
		nz, _, _, err := s.Update(sz, []zone.RR{old}, []zone.RR{nw, c.rr(fmt.Sprintf("new%d.bench.example. 3600 IN A 192.0.2.1", i))}, now)
		if err != nil {
			b.Fatal(err)
		}
		sz = nz
	}
}

// BenchmarkKnotSign signs the same zone with Knot DNS (knotd on loopback,
// the same policy: a CSK of ECDSAP256SHA256, NSEC, 14-day signatures,
// signing-threads as GOMAXPROCS) and reports the time of `knotc -b
// zone-sign` (a whole re-signing), the time of its first load and
// signing, and knotd's peak RSS.
func BenchmarkKnotSign(b *testing.B) {
	knotd := testkit.RequireTool(b, "knotd", "knot")
	knotc := testkit.RequireTool(b, "knotc", "knot")
	dir := b.TempDir()
	path := writeBenchZone(b, dir, benchNames(b))
	conf := filepath.Join(dir, "knot.conf")
	port := testkit.FreePort(b)
	cfg := fmt.Sprintf(`server:
    rundir: %q
    listen: 127.0.0.1@%d
    background-workers: %d

%s
policy:
  - id: bench
    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
    rrsig-lifetime: 14d
    rrsig-refresh: 5d
    signing-threads: %d

template:
  - id: default
    storage: %q
    journal-content: none
    zonefile-sync: -1

zone:
  - domain: bench.example.
    file: %q
    dnssec-signing: on
    dnssec-policy: bench
`, filepath.Join(dir, "run"), port, runtime.GOMAXPROCS(0), testkit.KnotDirs(b, dir), runtime.GOMAXPROCS(0), dir, path)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	p := testkit.StartProcess(b, "knotd", filepath.Join(dir, "knotd.log"), knotd, "-c", conf)
	sock := filepath.Join(dir, "run", "knot.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	// Loaded and signed: knotd logs the signing's end, then the load.
	for !strings.Contains(p.Log(), "loaded, serial") {
		if p.Exited() {
			b.Fatalf("knotd exited: %s", p.Tail(20))
		}
		if ctx.Err() != nil {
			b.Fatal("knotd did not load the zone in time")
		}
		time.Sleep(100 * time.Millisecond)
	}
	first := time.Since(start)
	for b.Loop() {
		out, err := exec.CommandContext(ctx, knotc, "-s", sock, "-b", "-t", "3600", "zone-sign", "bench.example.").CombinedOutput()
		if err != nil {
			b.Fatalf("knotc zone-sign: %v\n%s", err, out)
		}
	}
	b.StopTimer()
	b.ReportMetric(first.Seconds(), "s-first-load+sign")
	b.ReportMetric(peakRSS(p.Cmd.Process.Pid), "MiB-knotd-peak-RSS")
	b.Logf("knotd log:\n%s", p.Tail(12))
}
