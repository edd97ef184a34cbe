package xfrout

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAXFR writes the AXFR of a 100,000-host zone (messages built,
// signed and framed; no socket), by message size and signing.
func BenchmarkAXFR(b *testing.B) {
	src := newMemSource()
	z := makeZone(b, origin, 1, 100_000)
	src.set(b, z)
	for _, size := range []int{16384, 65535} {
		for _, key := range []*clientKey{nil, signA} {
			name := fmt.Sprintf("size=%d/signed=%t", size, key != nil)
			b.Run(name, func(b *testing.B) {
				cfg := Config{
					Listen:        []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
					Keys:          testKeys(),
					AllowTransfer: []ACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}},
					MessageSize:   size,
				}
				s, err := New(cfg, src, testLogger(b))
				if err != nil {
					b.Fatal(err)
				}
				req, _ := pack(b, axfrQuery(origin), key)
				from := netip.MustParseAddrPort("127.0.0.1:5300")
				var bytes, msgs int
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					bytes, msgs = 0, 0
					ok := s.handle(b.Context(), req, from, true, func(frame []byte) error {
						bytes += len(frame)
						msgs++
						return nil
					})
					if !ok {
						b.Fatal("write failed")
					}
				}
				// CPU time, GC included, which other load on the machine
				// does not inflate as it does wall time.
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
				b.SetBytes(int64(bytes))
				b.ReportMetric(float64(z.Records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
				b.ReportMetric(float64(msgs), "msgs/op")
			})
		}
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
