package zonesync

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// packAnswer packs a response whose answer section is rrs.
func packAnswer(t testing.TB, name string, qtype uint16, rrs []dns.RR) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Response, m.Authoritative = true, true
	m.Answer = rrs
	out, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ixfrMsgs is the IXFR answer from one version to the next, in two
// messages, as xfrout sends it over the stream.
func ixfrMsgs(t testing.TB, from, to *zone.Zone) [][]byte {
	t.Helper()
	del, add, err := zone.Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	rrs := append([]dns.RR{to.SOA()}, del...)
	rrs = append(rrs, add...)
	rrs = append(rrs, to.SOA())
	half := len(rrs) / 2
	return [][]byte{packAnswer(t, to.Origin, dns.TypeIXFR, rrs[:half]), packAnswer(t, to.Origin, dns.TypeIXFR, rrs[half:])}
}

// axfrMsgs is the whole zone, SOA first and last, in two messages.
func axfrMsgs(t testing.TB, z *zone.Zone) [][]byte {
	t.Helper()
	rrs, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	rrs = append(rrs, z.SOA())
	half := len(rrs) / 2
	return [][]byte{packAnswer(t, z.Origin, dns.TypeAXFR, rrs[:half]), packAnswer(t, z.Origin, dns.TypeAXFR, rrs[half:])}
}

// TestApplyPushed pushes transfers to a zone as a control plane's stream
// does: a difference applies without a question to the primary, is
// persisted, and counts as a confirmation; one that was already applied
// changes nothing (never applied twice); one that does not start at the
// zone's serial, or a difference to a zone without data, is refused with
// the serial the zone holds (the stream then sends what fits).
func TestApplyPushed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		f.wantServed(1)
		queries := f.p.queries.Load()
		ctx := context.Background()
		v1 := makeZone(t, 1)
		v2 := makeZone(t, 2, "new.example.com. 60 IN TXT \"pushed\"")
		v3 := makeZone(t, 3, "new.example.com. 60 IN TXT \"pushed again\"")
		v4 := makeZone(t, 4)

		res, err := f.m.ApplyPushed(ctx, origin, ixfrMsgs(t, v1, v2), "stream test")
		if err != nil || res != (PushResult{Serial: 2, Applied: true}) {
			t.Fatalf("push 1→2: %+v, %v", res, err)
		}
		synctest.Wait()
		if diff := cmp.Diff(dump(t, v2), dump(t, served(f.m, origin))); diff != "" {
			t.Fatalf("served after the push (-want +got):\n%s", diff)
		}
		st := f.m.Status()[0]
		if st.Primary != "stream test" || st.LastError != "" {
			t.Errorf("status after the push: primary %q, error %q; want the stream, no error", st.Primary, st.LastError)
		}

		// The same difference again, as after a reconnect that resent
		// it: the zone has it, nothing changes.
		res, err = f.m.ApplyPushed(ctx, origin, ixfrMsgs(t, v1, v2), "stream test")
		if err != nil || res != (PushResult{Serial: 2, Applied: true}) {
			t.Fatalf("push 1→2 again: %+v, %v", res, err)
		}
		// A difference from a serial we do not hold.
		res, err = f.m.ApplyPushed(ctx, origin, ixfrMsgs(t, v3, v4), "stream test")
		if err == nil || res != (PushResult{Serial: 2}) {
			t.Fatalf("push 3→4 onto 2: %+v, %v; want refused with serial 2", res, err)
		}
		// A cut transfer.
		res, err = f.m.ApplyPushed(ctx, origin, ixfrMsgs(t, v2, v3)[:1], "stream test")
		if err == nil || res != (PushResult{Serial: 2}) {
			t.Fatalf("push of half a transfer: %+v, %v; want refused with serial 2", res, err)
		}
		// The whole zone at a newer serial applies too.
		res, err = f.m.ApplyPushed(ctx, origin, axfrMsgs(t, v3), "stream test")
		if err != nil || res != (PushResult{Serial: 3, Applied: true}) {
			t.Fatalf("push of v3 whole: %+v, %v", res, err)
		}
		// A zone the node does not serve.
		res, err = f.m.ApplyPushed(ctx, "other.example.", axfrMsgs(t, makeZoneFor(t, "other.example.", 1)), "stream test")
		if err != nil || !res.Unknown {
			t.Fatalf("push of an unknown zone: %+v, %v; want Unknown", res, err)
		}
		if got := f.p.queries.Load(); got != queries {
			t.Errorf("the primary was asked %d times during the pushes; want none", got-queries)
		}
		if got := counter(t, f.m.met.transfers.WithLabelValues("ixfr_stream", "ok")); got != 1 {
			t.Errorf("ixfr_stream ok = %v, want 1", got)
		}

		// Persisted: a restart without the primary serves v3.
		f.stop()
		f.p.with(func(p *primary) { p.refuse = true })
		f.start()
		f.wantServed(3)
		if diff := cmp.Diff(dump(t, v3), dump(t, served(f.m, origin))); diff != "" {
			t.Fatalf("served after a restart (-want +got):\n%s", diff)
		}
	})
}

// TestApplyPushedNeedsFull: a difference pushed to a zone that has no data
// yet asks for the whole zone.
func TestApplyPushedNeedsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixtureWith(t, nil, func(p *primary) { p.refuse = true })
		synctest.Wait()
		f.wantServed(0)
		res, err := f.m.ApplyPushed(context.Background(), origin, ixfrMsgs(t, makeZone(t, 1), makeZone(t, 2)), "stream test")
		if err == nil || !res.NeedFull || res.Applied {
			t.Fatalf("difference to an empty zone: %+v, %v; want NeedFull", res, err)
		}
		res, err = f.m.ApplyPushed(context.Background(), origin, axfrMsgs(t, makeZone(t, 2)), "stream test")
		if err != nil || res != (PushResult{Serial: 2, Applied: true}) {
			t.Fatalf("whole zone: %+v, %v", res, err)
		}
		f.wantServed(2)
	})
}

// notifySerial packs a NOTIFY carrying the SOA of serial, signed.
func notifySerial(t testing.TB, serial uint32) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetNotify(origin)
	soa := makeZone(t, serial).SOA()
	m.Answer = []dns.RR{soa}
	m.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Unix())
	out, _, err := dns.TsigGenerate(m, testSecret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNotifyWaitsForStream: while a stream is live, a NOTIFY leaves the
// stream StreamGrace to bring its serial, and refreshes only if it did not
// (NOTIFY stays the fallback).
func TestNotifyWaitsForStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		f.wantServed(1)
		f.m.SetStreamLive(func() bool { return true })
		v2 := makeZone(t, 2, "new.example.com. 60 IN TXT \"two\"")
		f.p.set(v2)
		queries := f.p.queries.Load()
		if resp := f.m.Notify(notifySerial(t, 2), mustAddrPort(primaryAddr)); len(resp) < 4 || resp[3]&0xf != 0 {
			t.Fatalf("notify answer %x", resp)
		}
		synctest.Wait()
		f.wantServed(1) // not refreshed at once
		if _, err := f.m.ApplyPushed(context.Background(), origin, ixfrMsgs(t, makeZone(t, 1), v2), "stream test"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(StreamGrace + time.Second)
		synctest.Wait()
		f.wantServed(2)
		if got := f.p.queries.Load(); got != queries {
			t.Errorf("the primary was asked %d times; want none: the stream brought the notified serial", got-queries)
		}

		// The stream does not bring serial 3: the NOTIFY refreshes after
		// the grace.
		v3 := makeZone(t, 3, "new.example.com. 60 IN TXT \"three\"")
		f.p.set(v3)
		if resp := f.m.Notify(notifySerial(t, 3), mustAddrPort(primaryAddr)); len(resp) < 4 || resp[3]&0xf != 0 {
			t.Fatalf("notify answer %x", resp)
		}
		time.Sleep(StreamGrace - time.Millisecond)
		synctest.Wait()
		f.wantServed(2)
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		f.wantServed(3)
	})
}

// TestSerials lists every followed zone, 0 for one without data.
func TestSerials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, func(c *Config) {
			c.Zones = append(c.Zones, Zone{Name: "missing.example.", Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}})
		})
		synctest.Wait()
		if diff := cmp.Diff(map[string]uint32{origin: 1, "missing.example.": 0}, f.m.Serials()); diff != "" {
			t.Errorf("Serials (-want +got):\n%s", diff)
		}
	})
}
