package health

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// floodedServer answers over TCP and, over UDP, reads every packet and
// answers none — a server whose UDP answers are lost in a flood — or, when
// wedged, reads nothing at all. read counts the UDP packets read.
func floodedServer(t *testing.T, wedged bool, read *atomic.Uint64) netip.AddrPort {
	t.Helper()
	pc, ln := listenPair(t)
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = pc.Close(); wg.Wait() })
	if !wedged {
		wg.Go(func() {
			buf := make([]byte, 512)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				read.Add(1)
			}
		})
	}
	s := &dns.Server{Listener: ln, Handler: &authServer{zones: []string{"example.com."}}}
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })
	return addr
}

// TestDNSCheckFlooded: UDP answers lost while the server keeps handling
// packets, TCP answered: flooded, not broken — the check passes (absorb,
// don't withdraw). A wedged UDP listener, a check without the progress
// count, and a dead TCP listener still fail.
func TestDNSCheckFlooded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		wedged   bool
		progress bool
		tcpDead  bool
		wantPass bool
	}{
		{"flooded", false, true, false, true},
		{"wedged udp", true, true, false, false},
		{"no progress count", false, false, false, false},
		{"tcp dead too", false, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var read atomic.Uint64
			addr := floodedServer(t, tc.wedged, &read)
			if tc.tcpDead {
				// Another address with a silent UDP reader and no TCP.
				pc, err := net.ListenPacket("udp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = pc.Close() })
				go func() {
					buf := make([]byte, 512)
					for {
						if _, _, err := pc.ReadFrom(buf); err != nil {
							return
						}
						read.Add(1)
					}
				}()
				addr = netip.MustParseAddrPort(pc.LocalAddr().String())
			}
			d := &DNSCheck{Addr: addr, Zones: zones("example.com.")}
			if tc.progress {
				d.UDPProgress = read.Load
			}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			err := d.Check(ctx)
			if (err == nil) != tc.wantPass {
				t.Errorf("Check = %v, want pass %v", err, tc.wantPass)
			}
			if want := map[bool]uint64{true: 1, false: 0}[tc.wantPass]; d.Flooded.Load() != want {
				t.Errorf("Flooded = %d, want %d", d.Flooded.Load(), want)
			}
		})
	}
}
