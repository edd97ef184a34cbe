package announce

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBFDPacketRoundTrip(t *testing.T) {
	tests := []bfdPacket{
		{Diag: bfdDiagNone, State: bfdDown, DetectMult: 3, MyDisc: 1, DesiredMinTx: 1e6, RequiredMinRx: 1e5},
		{Diag: bfdDiagTimeExpired, State: bfdUp, Poll: true, DetectMult: 5, MyDisc: 0xdeadbeef, YourDisc: 7, DesiredMinTx: 1e5, RequiredMinRx: 3e5},
		{Diag: bfdDiagNeighborDown, State: bfdInit, Final: true, DetectMult: 1, MyDisc: 9, YourDisc: 0xffffffff},
		{Diag: bfdDiagAdminDown, State: bfdAdminDown, DetectMult: 3, MyDisc: 2},
	}
	for _, p := range tests {
		t.Run(p.State.String(), func(t *testing.T) {
			got, err := parseBFD(p.marshal())
			if err != nil {
				t.Fatalf("parseBFD(marshal(%+v)): %v", p, err)
			}
			if diff := cmp.Diff(p, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBFDPacketInvalid(t *testing.T) {
	valid := bfdPacket{State: bfdUp, DetectMult: 3, MyDisc: 1, YourDisc: 2}.marshal()
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), valid...)
		return f(b)
	}
	tests := map[string][]byte{
		"short":            valid[:23],
		"version 0":        mod(func(b []byte) []byte { b[0] &^= 0xe0; return b }),
		"length too short": mod(func(b []byte) []byte { b[3] = 20; return b }),
		"length too long":  mod(func(b []byte) []byte { b[3] = 30; return b }),
		"auth bit":         mod(func(b []byte) []byte { b[1] |= 1 << 2; return b }),
		"multipoint":       mod(func(b []byte) []byte { b[1] |= 1; return b }),
		"poll and final":   mod(func(b []byte) []byte { b[1] |= 3 << 4; return b }),
		"detect mult 0":    mod(func(b []byte) []byte { b[2] = 0; return b }),
		"my disc 0":        mod(func(b []byte) []byte { clear(b[4:8]); return b }),
		"your disc 0 up":   mod(func(b []byte) []byte { clear(b[8:12]); return b }),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if p, err := parseBFD(b); !errors.Is(err, errBFDPacket) {
				t.Errorf("parseBFD = %+v, %v; want errBFDPacket", p, err)
			}
		})
	}
}

func FuzzParseBFD(f *testing.F) {
	f.Add(bfdPacket{State: bfdUp, DetectMult: 3, MyDisc: 1, YourDisc: 2, DesiredMinTx: 1e5}.marshal())
	f.Add(bfdPacket{State: bfdDown, DetectMult: 3, MyDisc: 1}.marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseBFD(b)
		if err != nil {
			return
		}
		q, err := parseBFD(p.marshal())
		if err != nil {
			t.Fatalf("re-parse of %+v: %v", p, err)
		}
		if p != q {
			t.Fatalf("re-parse %+v != %+v", q, p)
		}
	})
}

// bfdPair is our session and a remote one, joined by an in-memory wire that
// goes through the muxes' dispatch, as packets from the network would.
type bfdPair struct {
	ours, remote       netip.Addr
	usMux, themMux     *bfdMux
	us                 *bfdSession
	them               *bfdSession
	themCancel         context.CancelFunc
	cut                atomic.Bool // drop everything the remote sends (a frozen peer)
	mu                 sync.Mutex
	changes            []bfdChange
	sentToUs, sentThem atomic.Int64
}

func newBFDPair(t *testing.T, ctx context.Context) *bfdPair {
	logger := testLogger(t)
	bp := &bfdPair{ours: netip.MustParseAddr("100.64.0.2"), remote: netip.MustParseAddr("100.64.0.1")}
	bp.usMux = newBFDMux(0, nil, logger)
	bp.themMux = newBFDMux(0, nil, logger)
	record := func(c bfdChange) {
		bp.mu.Lock()
		bp.changes = append(bp.changes, c)
		bp.mu.Unlock()
	}
	bp.us = newBFDSession(bp.remote, 1, 100*time.Millisecond, 3, func(b []byte) error {
		p, err := parseBFD(b)
		if err != nil {
			t.Errorf("we sent an invalid packet: %v", err)
			return err
		}
		bp.sentThem.Add(1)
		bp.themMux.dispatch(p, bp.ours)
		return nil
	}, record, logger)
	bp.usMux.sessions[bp.remote] = bp.us
	bp.usMux.byDisc[1] = bp.us
	go bp.us.run(ctx)
	bp.restartRemote(t, ctx, 100)
	return bp
}

// restartRemote replaces the remote session by a new one with discriminator
// disc, as BIRD does for each new BGP session.
func (bp *bfdPair) restartRemote(t *testing.T, ctx context.Context, disc uint32) {
	if bp.themCancel != nil {
		bp.themCancel()
	}
	logger := testLogger(t)
	them := newBFDSession(bp.ours, disc, 100*time.Millisecond, 3, func(b []byte) error {
		if bp.cut.Load() {
			return nil
		}
		p, err := parseBFD(b)
		if err != nil {
			return err
		}
		bp.sentToUs.Add(1)
		bp.usMux.dispatch(p, bp.remote)
		return nil
	}, nil, logger)
	bp.themMux.mu.Lock()
	clear(bp.themMux.sessions)
	clear(bp.themMux.byDisc)
	bp.themMux.sessions[bp.ours] = them
	bp.themMux.byDisc[disc] = them
	bp.themMux.mu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	bp.them, bp.themCancel = them, cancel
	go them.run(cctx)
}

func (bp *bfdPair) takeChanges() []bfdChange {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	c := bp.changes
	bp.changes = nil
	return c
}

func TestBFDSessionUpDetectAndRemoteRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		bp := newBFDPair(t, ctx)

		// Down -> Init -> Up on both sides within two slow (1 s) intervals.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if bp.us.State() != bfdUp || bp.them.State() != bfdUp {
			t.Fatalf("after 2s: us %v, them %v; want both up", bp.us.State(), bp.them.State())
		}
		// RFC 5880 §6.8.6: a session in Down goes to Init on a Down packet
		// and straight to Up on an Init packet; which one it sees first
		// depends on the jittered send times of both sides.
		viaInit := []bfdChange{
			{Peer: bp.remote, From: bfdDown, To: bfdInit},
			{Peer: bp.remote, From: bfdInit, To: bfdUp},
		}
		direct := []bfdChange{{Peer: bp.remote, From: bfdDown, To: bfdUp}}
		got := bp.takeChanges()
		if !cmp.Equal(viaInit, got, netipCmp) && !cmp.Equal(direct, got, netipCmp) {
			t.Errorf("changes (-want +got):\n%s", cmp.Diff(viaInit, got, netipCmp))
		}

		// After the Poll Sequences both sides send every 75-100 ms.
		before := bp.sentThem.Load()
		time.Sleep(time.Second)
		if n := bp.sentThem.Load() - before; n < 10 || n > 14 {
			t.Errorf("sent %d packets in 1s when up at 100ms, want 10-14", n)
		}

		// A frozen remote: detected after 3 x 100 ms without packets.
		bp.cut.Store(true)
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if bp.us.State() != bfdUp {
			t.Fatalf("down after 200ms of silence, detection time is 300ms")
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if bp.us.State() != bfdDown {
			t.Fatalf("state %v after 400ms of silence, want down", bp.us.State())
		}
		want := []bfdChange{{Peer: bp.remote, From: bfdUp, To: bfdDown, Diag: bfdDiagTimeExpired}}
		if diff := cmp.Diff(want, bp.takeChanges(), netipCmp); diff != "" {
			t.Errorf("changes (-want +got):\n%s", diff)
		}

		// The remote comes back with a new session (new discriminator,
		// Your Discriminator 0): it must reach our session by source address.
		bp.cut.Store(false)
		bp.restartRemote(t, ctx, 200)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if bp.us.State() != bfdUp || bp.them.State() != bfdUp {
			t.Fatalf("after remote restart: us %v, them %v; want both up", bp.us.State(), bp.them.State())
		}
		bp.takeChanges()

		// A remote restart while we are Up (we missed nothing): its Down with
		// Your Discriminator 0 takes us down at once, then we come up with it.
		bp.restartRemote(t, ctx, 300)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if bp.us.State() != bfdUp {
			t.Fatalf("after restart while up: us %v, want up", bp.us.State())
		}
		want = []bfdChange{
			{Peer: bp.remote, From: bfdUp, To: bfdDown, Diag: bfdDiagNeighborDown},
			{Peer: bp.remote, From: bfdDown, To: bfdInit},
			{Peer: bp.remote, From: bfdInit, To: bfdUp},
		}
		if diff := cmp.Diff(want, bp.takeChanges(), netipCmp); diff != "" {
			t.Errorf("changes (-want +got):\n%s", diff)
		}
		if bp.us.remoteDisc != 300 {
			t.Errorf("remote discriminator %d, want 300", bp.us.remoteDisc)
		}
		cancel()
		synctest.Wait()
	})
}

// TestBFDDispatch: packets for another discriminator or from another address
// do not reach a session.
func TestBFDDispatch(t *testing.T) {
	m := newBFDMux(0, nil, testLogger(t))
	peer := netip.MustParseAddr("100.64.0.1")
	s := newBFDSession(peer, 42, 100*time.Millisecond, 3, func([]byte) error { return nil }, nil, testLogger(t))
	m.sessions[peer], m.byDisc[42] = s, s
	tests := []struct {
		name string
		p    bfdPacket
		from netip.Addr
		want bool
	}{
		{"your disc", bfdPacket{State: bfdUp, MyDisc: 7, YourDisc: 42, DetectMult: 3}, peer, true},
		{"zero your disc by address", bfdPacket{State: bfdDown, MyDisc: 8, DetectMult: 3}, peer, true},
		{"unknown your disc", bfdPacket{State: bfdUp, MyDisc: 7, YourDisc: 43, DetectMult: 3}, peer, false},
		{"right disc wrong address", bfdPacket{State: bfdUp, MyDisc: 7, YourDisc: 42, DetectMult: 3}, netip.MustParseAddr("100.64.0.9"), false},
		{"zero your disc unknown address", bfdPacket{State: bfdDown, MyDisc: 8, DetectMult: 3}, netip.MustParseAddr("100.64.0.9"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.dispatch(tt.p, tt.from); got != tt.want {
				t.Errorf("dispatch = %v, want %v", got, tt.want)
			}
		})
	}
}
