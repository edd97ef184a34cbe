//go:build linux

package anycast

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Targets of issue 3, asserted; the measured figure is in every failure.
const (
	maxDNSFailureWithdraw = time.Second            // DNS listener fails → route gone
	maxKillWithdraw       = time.Second            // SIGKILL → route gone
	maxBFDWithdraw        = 500 * time.Millisecond // SIGSTOP with BFD 100 ms × 3 → route gone
	maxBack               = 5 * time.Second        // SIGCONT → route back

	// Bounds that only say "it happens": a node that never withdraws or
	// never announces fails them; they are not performance targets.
	eventually = 5 * time.Second
	startup    = 30 * time.Second // node start → route, on a loaded machine
)

// TestStartup: the route appears in BIRD only after the node answers DNS;
// never while its DNS is blocked; never while a configured zone fails to
// load.
func TestStartup(t *testing.T) {
	t.Run("answers_before_announce", testStartupOrder)
	t.Run("dns_blocked", testStartupDNSBlocked)
	t.Run("broken_zone", testStartupBrokenZone)
}

func testStartupOrder(t *testing.T) {
	e := newEnv(t, false)
	cfg := e.writeNodeConfig(nodeOpts{})
	n := e.startNode(cfg)
	// Each round asks the node on its anycast address (from N, the address
	// its self-check uses) and on its unicast address (from R), then looks
	// at BIRD. The route must not be seen in a round before both answered.
	var firstAnycast, firstUnicast, firstRoute time.Duration = -1, -1, -1
	for firstRoute < 0 {
		if n.exited() {
			t.Fatalf("node exited: %v", n.state)
		}
		now := time.Since(n.started)
		if firstAnycast < 0 && query(e.nNS, "udp", anycast4Port, 200*time.Millisecond) == nil {
			firstAnycast = time.Since(n.started)
		}
		if firstUnicast < 0 && query(e.rNS, "udp", unicastPort, 200*time.Millisecond) == nil {
			firstUnicast = time.Since(n.started)
		}
		v := e.view()
		if v.bird4 || v.bird6 {
			firstRoute = time.Since(n.started)
			if firstAnycast < 0 || firstUnicast < 0 {
				t.Fatalf("route in BIRD %v after start, before the node answered DNS (anycast first answered at %v, unicast at %v; -1 = never): %v",
					ms(firstRoute), ms(firstAnycast), ms(firstUnicast), v)
			}
		}
		if now > startup {
			t.Fatalf("no route in BIRD %v after the node started (answered on anycast at %v, unicast at %v)\n%s\n%s",
				startup, ms(firstAnycast), ms(firstUnicast), e.birdc("show", "protocols", "all", "node"), e.statusText())
		}
		time.Sleep(pollEvery)
	}
	bird, fib := e.waitRoutes(n.started, true, startup, "initial announce")
	t.Logf("node start → answers on %s after %v, on %s (from R) after %v; route in BIRD after %v (both prefixes %v), in R's FIB after %v",
		anycast4Port, ms(firstAnycast), unicastPort, ms(firstUnicast), ms(firstRoute), ms(bird), ms(fib))
	figure(t, "start_to_route_bird", durations{bird})

	// Through the route: R's DNS client reaches the anycast addresses.
	for _, c := range []struct {
		network string
		addr    string
	}{{"udp", anycast4}, {"tcp", anycast4}, {"udp", anycast6}, {"tcp", anycast6}} {
		port := anycast4Port
		if c.addr == anycast6 {
			port = anycast6Port
		}
		if err := query(e.rNS, c.network, port, 2*time.Second); err != nil {
			t.Errorf("from R through the route, %s to %s: %v", c.network, port, err)
		}
	}
}

func testStartupDNSBlocked(t *testing.T) {
	e := newEnv(t, false)
	cfg := e.writeNodeConfig(nodeOpts{})
	e.blockDNS()
	n := e.startNode(cfg)
	est := e.waitEstablished(startup)
	t.Logf("BGP session established %v after start, DNS on the anycast addresses blocked", ms(est))
	// The session is up and the process serves its unicast address, yet
	// nothing is announced while its anycast address does not answer.
	p := startProber(t, e.rNS, "udp", unicastPort, 50*time.Millisecond, time.Second)
	e.holdRoutes(false, 2*time.Second, "DNS blocked")
	samples := p.Stop()
	if failed, total := failures(samples, time.Time{}, time.Now()); len(failed) > 0 || total == 0 {
		t.Fatalf("unicast %s from R while blocked: %d of %d queries failed (first: %v)", unicastPort, len(failed), total, firstErr(failed))
	}
	if st, err := e.admin(http.MethodGet, "/v1/status"); err != nil || st.Healthy || len(st.Announced) > 0 {
		t.Fatalf("status while blocked: %+v, %v; want unhealthy, nothing announced", st, err)
	}
	if n.exited() {
		t.Fatalf("node exited: %v", n.state)
	}
	t0, _ := e.unblockDNS()
	bird, fib := e.waitRoutes(t0, true, eventually, "announce after unblocking DNS")
	t.Logf("DNS unblocked → route in BIRD after %v, in R's FIB after %v (rise %d × %v)", ms(bird), ms(fib), healthRise, healthInterval)
	figure(t, "start_blocked_unblock_to_route_bird", durations{bird})
	if err := query(e.rNS, "udp", anycast4Port, 2*time.Second); err != nil {
		t.Errorf("from R through the route to %s: %v", anycast4Port, err)
	}
}

func testStartupBrokenZone(t *testing.T) {
	e := newEnv(t, false)
	const broken = "broken.example."
	brokenFile := e.writeZone("broken.example.zone", zoneText(broken, "bad IN A not-an-address"))
	cfg := e.writeNodeConfig(nodeOpts{zones: map[string]string{
		zoneName: e.writeZone("example.com.zone", zoneText(zoneName)),
		broken:   brokenFile,
	}})
	n := e.startNode(cfg)
	est := e.waitEstablished(startup)
	t.Logf("BGP session established %v after start, zone %s failed to load", ms(est), broken)
	// Serving the good zone on the unicast address, session up, never
	// announcing: watched for 3 s (30 health rounds).
	p := startProber(t, e.rNS, "udp", unicastPort, 50*time.Millisecond, time.Second)
	e.holdRoutes(false, 3*time.Second, "zone failed to load")
	samples := p.Stop()
	if failed, total := failures(samples, time.Time{}, time.Now()); len(failed) > 0 || total == 0 {
		t.Fatalf("unicast %s from R with a broken zone: %d of %d queries failed (first: %v)", unicastPort, len(failed), total, firstErr(failed))
	}
	st, err := e.admin(http.MethodGet, "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	zoneErr := ""
	for _, c := range st.Checks {
		if c.Name == "zones" {
			zoneErr = c.Error
		}
	}
	if st.Healthy || len(st.Announced) > 0 || !strings.Contains(zoneErr, broken) {
		t.Fatalf("status with a broken zone: healthy=%v announced=%v zones check %q; want unhealthy, nothing announced, %s named",
			st.Healthy, st.Announced, zoneErr, broken)
	}
	// The same node announces once the zone is fixed and reloaded: what
	// held it back was the zone.
	writeFile(t, brokenFile, zoneText(broken, "bad IN A 192.0.2.81"))
	t0 := time.Now()
	n.signal(syscall.SIGHUP)
	bird, fib := e.waitRoutes(t0, true, eventually, "announce after fixing the zone")
	t.Logf("zone fixed, SIGHUP → route in BIRD after %v, in R's FIB after %v", ms(bird), ms(fib))
	figure(t, "zone_fixed_sighup_to_route_bird", durations{bird})
}

// TestDrain: an operator drain (admin API, then the maintenance file) and
// SIGTERM withdraw the route while the node keeps answering; undrain
// announces again; after SIGTERM the node answers for drain_period, then
// exits 0.
func TestDrain(t *testing.T) {
	e := newEnv(t, false)
	n := e.startNode(e.writeNodeConfig(nodeOpts{}))
	e.waitRoutes(n.started, true, startup, "initial announce")
	e.holdRoutes(true, 500*time.Millisecond, "initial")

	// The node's unicast address, from R, throughout.
	uni := startProber(t, e.rNS, "udp", unicastPort, 20*time.Millisecond, time.Second)

	// 1. Admin API drain. (cmd/anycastctl does not exist yet; this is the
	// request "anycastctl drain" is to send.)
	t0 := time.Now()
	st, err := e.admin(http.MethodPost, "/v1/drain")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Drained || len(st.Announced) > 0 {
		t.Errorf("POST /v1/drain answered drained=%v announced=%v; want drained, nothing announced", st.Drained, st.Announced)
	}
	bird, fib := e.waitRoutes(t0, false, eventually, "admin drain")
	t.Logf("admin drain → route gone from BIRD after %v, from R's FIB after %v", ms(bird), ms(fib))
	figure(t, "admin_drain_to_gone_bird", durations{bird})
	e.checkDrained(t, "admin drain")
	e.holdRoutes(false, 500*time.Millisecond, "drained")
	t1 := time.Now()
	if _, err := e.admin(http.MethodPost, "/v1/undrain"); err != nil {
		t.Fatal(err)
	}
	bird2, fib2 := e.waitRoutes(t1, true, eventually, "admin undrain")
	t.Logf("admin undrain → route back in BIRD after %v, in R's FIB after %v", ms(bird2), ms(fib2))
	figure(t, "admin_undrain_to_back_bird", durations{bird2})
	if failed, total := failures(uni.snapshot(), t0, time.Now()); len(failed) > 0 {
		t.Errorf("unicast %s from R during the admin drain: %d of %d queries failed (first: %v)", unicastPort, len(failed), total, firstErr(failed))
	}
	e.holdRoutes(true, 500*time.Millisecond, "after undrain")

	// 2. Maintenance file: health fails after fall rounds.
	t0 = time.Now()
	writeFile(t, e.maintenanceFile(), "e2e drain\n")
	bird3, fib3 := e.waitRoutes(t0, false, eventually, "maintenance file")
	t.Logf("maintenance file created → route gone from BIRD after %v, from R's FIB after %v (fall %d × %v)", ms(bird3), ms(fib3), healthFall, healthInterval)
	figure(t, "maintenance_file_to_gone_bird", durations{bird3})
	e.checkDrained(t, "maintenance file")
	e.holdRoutes(false, 500*time.Millisecond, "maintenance file")
	t1 = time.Now()
	if err := os.Remove(e.maintenanceFile()); err != nil {
		t.Fatal(err)
	}
	bird4, fib4 := e.waitRoutes(t1, true, eventually, "maintenance file removed")
	t.Logf("maintenance file removed → route back in BIRD after %v, in R's FIB after %v (rise %d × %v)", ms(bird4), ms(fib4), healthRise, healthInterval)
	figure(t, "maintenance_file_removed_to_back_bird", durations{bird4})
	if failed, total := failures(uni.snapshot(), t0, time.Now()); len(failed) > 0 {
		t.Errorf("unicast %s from R during the maintenance drain: %d of %d queries failed (first: %v)", unicastPort, len(failed), total, firstErr(failed))
	}
	e.holdRoutes(true, 500*time.Millisecond, "after the maintenance file")

	// 3. SIGTERM: withdraw, answer for drain_period, stop, exit 0.
	t0 = time.Now()
	n.signal(syscall.SIGTERM)
	bird5, fib5 := e.waitRoutes(t0, false, eventually, "SIGTERM")
	code := n.wait(drainPeriod + 10*time.Second)
	exit := n.exitAt.Sub(t0)
	time.Sleep(200 * time.Millisecond) // see the queries fail once it is gone
	samples := uni.Stop()
	// The node answered every query sent before drain_period had passed
	// since SIGTERM (less 100 ms for a query in flight when it stopped),
	// and stopped answering before it exited.
	answeredTo := t0.Add(drainPeriod - 100*time.Millisecond)
	failed, total := failures(samples, t0, answeredTo)
	var lastOK, firstFail time.Duration = -1, -1
	for _, s := range samples {
		if s.at.Before(t0) {
			continue
		}
		if s.err == nil {
			lastOK = s.at.Sub(t0)
		} else if firstFail < 0 {
			firstFail = s.at.Sub(t0)
		}
	}
	t.Logf("SIGTERM → route gone from BIRD after %v, from R's FIB after %v; unicast answered until %v, first unanswered query at %v; exit code %d after %v (drain_period %v)",
		ms(bird5), ms(fib5), ms(lastOK), ms(firstFail), code, ms(exit), drainPeriod)
	figure(t, "sigterm_to_gone_bird", durations{bird5})
	figure(t, "sigterm_to_last_answer", durations{lastOK})
	figure(t, "sigterm_to_exit", durations{exit})
	if len(failed) > 0 || total == 0 {
		t.Errorf("unicast %s from R in the first %v after SIGTERM: %d of %d queries failed (first: %v) %s", unicastPort, drainPeriod-100*time.Millisecond, len(failed), total, firstErr(failed), machine(t0))
	}
	if firstFail < 0 {
		t.Errorf("SIGTERM: the unicast address still answered %v after the node exited", ms(time.Since(n.exitAt)))
	}
	if firstFail >= 0 && firstFail <= bird5 {
		t.Errorf("SIGTERM: the node stopped answering (first unanswered query sent at %v) before the route was gone from BIRD (%v)", ms(firstFail), ms(bird5))
	}
	if code != 0 {
		t.Errorf("SIGTERM: exit code %d, want 0", code)
	}
	if exit < drainPeriod {
		t.Errorf("SIGTERM: exited after %v, before drain_period %v", ms(exit), drainPeriod)
	}
}

// checkDrained: withdrawn, the node still answers on its anycast address
// from inside N and on its unicast address from R, while R, having no
// route, cannot reach the anycast address any more.
func (e *env) checkDrained(t *testing.T, what string) {
	t.Helper()
	if err := query(e.nNS, "udp", anycast4Port, time.Second); err != nil {
		t.Errorf("%s: node does not answer on %s inside N: %v", what, anycast4Port, err)
	}
	if err := query(e.rNS, "tcp", unicastPort, time.Second); err != nil {
		t.Errorf("%s: node does not answer on %s (TCP) from R: %v", what, unicastPort, err)
	}
	if err := query(e.rNS, "udp", anycast4Port, 300*time.Millisecond); err == nil {
		t.Errorf("%s: R still reaches %s without a route", what, anycast4Port)
	} else if !errors.Is(err, syscall.ENETUNREACH) {
		t.Logf("%s: R → %s failed with %v (not ENETUNREACH)", what, anycast4Port, err)
	}
}

// TestDNSFailure: while the process lives, its DNS on the anycast address
// stops answering (nftables drop in N) → route withdrawn in < 1 s; the rule
// removed → announced again after rise. Two cycles per node process (health
// flap damping raises rise after 4 changes in a minute), over two node
// processes by default.
func TestDNSFailure(t *testing.T) {
	e := newEnv(t, false)
	cfg := e.writeNodeConfig(nodeOpts{})
	procs := max(cycles(t, 4)/2, 1)
	var gone, goneFIB, back durations
	for p := range procs {
		n := e.startNode(cfg)
		e.waitRoutes(n.started, true, startup, fmt.Sprintf("node %d: initial announce", p))
		for c := range 2 {
			what := fmt.Sprintf("node %d cycle %d", p, c)
			e.holdRoutes(true, time.Second, what+": before")
			uni := startProber(t, e.rNS, "udp", unicastPort, 20*time.Millisecond, time.Second)
			t0, confirm := e.blockDNS()
			bird, fib := e.waitRoutes(t0, false, eventually, what+": DNS blocked")
			gone, goneFIB = append(gone, bird), append(goneFIB, fib)
			e.holdRoutes(false, 500*time.Millisecond, what+": blocked")
			t1, _ := e.unblockDNS()
			b, _ := e.waitRoutes(t1, true, eventually, what+": DNS unblocked")
			back = append(back, b)
			samples := uni.Stop()
			t.Logf("%s: DNS blocked at %s (nft confirmed after %v) → route gone from BIRD after %v, from R's FIB after %v; unblocked → back in BIRD after %v",
				what, t0.Format("15:04:05.000"), ms(confirm), ms(bird), ms(fib), ms(b))
			if bird >= maxDNSFailureWithdraw {
				t.Errorf("%s: route gone from BIRD %v after DNS was blocked, want < %v %s", what, ms(bird), maxDNSFailureWithdraw, machine(t0))
			}
			if failed, total := failures(samples, t0, time.Now()); len(failed) > 0 {
				t.Errorf("%s: unicast %s (not blocked) from R: %d of %d queries failed (first: %v)", what, unicastPort, len(failed), total, firstErr(failed))
			}
		}
		if p < procs-1 {
			n.kill()
			e.waitRoutes(time.Now(), false, eventually, "node killed between runs")
		}
	}
	figure(t, "dns_blocked_to_gone_bird", gone)
	figure(t, "dns_blocked_to_gone_fib", goneFIB)
	figure(t, "dns_unblocked_to_back_bird", back)
}

// TestKill: SIGKILL closes the BGP session at once (the kernel closes the
// TCP connection) → route gone in < 1 s.
func TestKill(t *testing.T) {
	e := newEnv(t, false)
	cfg := e.writeNodeConfig(nodeOpts{})
	var gone, goneFIB durations
	for i := range cycles(t, 3) {
		n := e.startNode(cfg)
		e.waitRoutes(n.started, true, startup, fmt.Sprintf("run %d: initial announce", i))
		e.holdRoutes(true, 500*time.Millisecond, fmt.Sprintf("run %d: before", i))
		t0 := time.Now()
		n.signal(syscall.SIGKILL)
		bird, fib := e.waitRoutes(t0, false, eventually, fmt.Sprintf("run %d: SIGKILL", i))
		gone, goneFIB = append(gone, bird), append(goneFIB, fib)
		n.wait(10 * time.Second)
		t.Logf("run %d: SIGKILL → route gone from BIRD after %v, from R's FIB after %v", i, ms(bird), ms(fib))
		if bird >= maxKillWithdraw {
			t.Errorf("run %d: route gone from BIRD %v after SIGKILL, want < %v %s", i, ms(bird), maxKillWithdraw, machine(t0))
		}
	}
	figure(t, "sigkill_to_gone_bird", gone)
	figure(t, "sigkill_to_gone_fib", goneFIB)
}

// TestFreezeBFD: the node host hung (SIGSTOP), BFD 100 ms × 3 → route gone
// in < 0.5 s; SIGCONT → back within 5 s. Five cycles, or
// $ANYCAST_E2E_CYCLES.
func TestFreezeBFD(t *testing.T) {
	e := newEnv(t, true)
	n := e.startNode(e.writeNodeConfig(nodeOpts{bfd: true}))
	e.waitRoutes(n.started, true, startup, "initial announce")
	e.waitBFDUp(10 * time.Second)
	var gone, goneFIB, back durations
	for i := range cycles(t, 5) {
		what := fmt.Sprintf("cycle %d", i)
		e.holdRoutes(true, time.Second, what+": before freeze")
		t0 := time.Now()
		n.signal(syscall.SIGSTOP)
		bird, fib := e.waitRoutes(t0, false, eventually, what+": SIGSTOP")
		gone, goneFIB = append(gone, bird), append(goneFIB, fib)
		time.Sleep(time.Second) // stay hung a while, as a stalled host would
		t1 := time.Now()
		n.signal(syscall.SIGCONT)
		b, _ := e.waitRoutes(t1, true, 30*time.Second, what+": SIGCONT")
		back = append(back, b)
		t.Logf("%s: SIGSTOP → route gone from BIRD after %v, from R's FIB after %v; SIGCONT → back in BIRD after %v",
			what, ms(bird), ms(fib), ms(b))
		if bird >= maxBFDWithdraw {
			t.Errorf("%s: route gone from BIRD %v after SIGSTOP with BFD, want < %v %s", what, ms(bird), maxBFDWithdraw, machine(t0))
		}
		if b >= maxBack {
			t.Errorf("%s: route back in BIRD %v after SIGCONT, want < %v %s", what, ms(b), maxBack, machine(t1))
		}
		e.waitBFDUp(10 * time.Second)
	}
	// A session that comes back only to be reset again must not pass.
	e.holdRoutes(true, 2*time.Second, "after the last SIGCONT")
	figure(t, "sigstop_bfd_to_gone_bird", gone)
	figure(t, "sigstop_bfd_to_gone_fib", goneFIB)
	figure(t, "sigcont_to_back_bird", back)
}

// TestFreezeHoldTime: without BFD a hung node is found by the BGP hold
// timer: withdrawn between hold − keepalive and hold (+ slack) after SIGSTOP.
func TestFreezeHoldTime(t *testing.T) {
	e := newEnv(t, false)
	n := e.startNode(e.writeNodeConfig(nodeOpts{}))
	e.waitRoutes(n.started, true, startup, "initial announce")
	var gone, back durations
	for i := range max(cycles(t, 5)/5, 1) {
		what := fmt.Sprintf("cycle %d", i)
		e.holdRoutes(true, time.Second, what+": before freeze")
		t0 := time.Now()
		n.signal(syscall.SIGSTOP)
		bird, _ := e.waitRoutes(t0, false, holdTime+5*time.Second, what+": SIGSTOP without BFD")
		gone = append(gone, bird)
		t1 := time.Now()
		n.signal(syscall.SIGCONT)
		b, _ := e.waitRoutes(t1, true, 30*time.Second, what+": SIGCONT")
		back = append(back, b)
		t.Logf("%s: SIGSTOP without BFD → route gone from BIRD after %v (hold %v, keepalive %v); SIGCONT → back after %v",
			what, ms(bird), holdTime, keepalive, ms(b))
		if bird < holdTime-keepalive || bird > holdTime+time.Second {
			t.Errorf("%s: withdrawn %v after SIGSTOP without BFD, want between %v and %v (the hold timer) %s", what, ms(bird), holdTime-keepalive, holdTime+time.Second, machine(t0))
		}
	}
	figure(t, "sigstop_nobfd_to_gone_bird", gone)
	figure(t, "sigstop_nobfd_sigcont_to_back_bird", back)
}

func firstErr(s []sample) error {
	if len(s) == 0 {
		return nil
	}
	return fmt.Errorf("at %s: %w", s[0].at.Format("15:04:05.000"), s[0].err)
}
