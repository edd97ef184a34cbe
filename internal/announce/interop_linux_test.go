//go:build linux

package announce

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// The interop tests run BIRD 2 as the router in one network namespace and
// this test binary, re-executed as the speaker, in another, joined by a veth
// pair. They need root; the BFD freeze test is the proof for issue 3.

const (
	routerAddr4  = "100.64.0.1"
	speakerAddr4 = "100.64.0.2"
	routerAddr6  = "2001:db8:ff::1"
	speakerAddr6 = "2001:db8:ff::2"
	anycast4     = "192.0.2.53/32"
	anycast6     = "2001:db8::53/128"

	maxDetect    = 500 * time.Millisecond // BFD freeze detection bound
	maxReannonce = 5 * time.Second        // route back in BIRD after resume
)

var nsCounter atomic.Int32

func requireInterop(t *testing.T) {
	t.Helper()
	testkit.RequireRoot(t, "network namespaces")
	for _, bin := range []string{"bird", "birdc", "ip"} {
		testkit.RequireTool(t, bin, "bird2 or iproute2")
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// lab is two namespaces joined by a veth pair: the router with BIRD, the speaker.
type lab struct {
	t          *testing.T
	dir        string
	routerNS   string
	speakerNS  string
	routerIf   string
	birdSock   string
	birdLog    string
	bfd        bool
	child      *exec.Cmd
	childPID   int
	childIn    io.WriteCloser
	childLines chan string
}

func newLab(t *testing.T, bfd bool) *lab {
	t.Helper()
	requireInterop(t)
	id := fmt.Sprintf("%d-%d", os.Getpid(), nsCounter.Add(1))
	short := fmt.Sprintf("%d%d", os.Getpid()%100000, nsCounter.Load())
	l := &lab{
		t:         t,
		dir:       t.TempDir(),
		routerNS:  "anc-r-" + id,
		speakerNS: "anc-s-" + id,
		routerIf:  "acr" + short,
		bfd:       bfd,
	}
	speakerIf := "acs" + short
	l.birdSock = filepath.Join(l.dir, "bird.ctl")
	l.birdLog = filepath.Join(l.dir, "bird.log")

	run(t, "ip", "netns", "add", l.routerNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.routerNS).Run() })
	run(t, "ip", "netns", "add", l.speakerNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.speakerNS).Run() })
	run(t, "ip", "link", "add", l.routerIf, "netns", l.routerNS, "type", "veth", "peer", "name", speakerIf, "netns", l.speakerNS)
	for _, c := range []struct{ ns, ifc, a4, a6 string }{
		{l.routerNS, l.routerIf, routerAddr4, routerAddr6},
		{l.speakerNS, speakerIf, speakerAddr4, speakerAddr6},
	} {
		run(t, "ip", "-n", c.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", c.ns, "addr", "add", c.a4+"/30", "dev", c.ifc)
		run(t, "ip", "-n", c.ns, "addr", "add", c.a6+"/64", "dev", c.ifc, "nodad")
		run(t, "ip", "-n", c.ns, "link", "set", c.ifc, "up")
	}
	l.startBird()
	return l
}

func (l *lab) birdConfig() string {
	bfdProto, bfdOpt := "", "bfd off;"
	if l.bfd {
		bfdProto = fmt.Sprintf(`protocol bfd {
	debug { states, events };
	interface %q { interval 100 ms; multiplier 3; };
}
`, l.routerIf)
		bfdOpt = "bfd on;"
	}
	return fmt.Sprintf(`log %q all;
timeformat protocol iso long ms;
timeformat log iso long ms;
router id %s;
protocol device { scan time 10; }
%s
filter from_speaker4 {
	if net ~ [ 192.0.2.53/32 ] then accept;
	reject;
}
filter from_speaker6 {
	if net ~ [ 2001:db8::53/128 ] then accept;
	reject;
}
protocol bgp speaker {
	debug { states, events, routes };
	local %s as %d;
	neighbor %s as %d;
	hold time 3;
	keepalive time 1;
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 10;
	error forget time 1;
	%s
	ipv4 { import filter from_speaker4; export none; };
	ipv6 { import filter from_speaker6; export none; };
}
`, l.birdLog, routerAddr4, bfdProto, routerAddr4, peerASN, speakerAddr4, ourASN, bfdOpt)
}

func (l *lab) startBird() {
	t := l.t
	conf := filepath.Join(l.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(l.birdConfig()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.routerNS, "bird", "-c", conf, "-s", l.birdSock, "-f")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bird: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(l.birdLog)
			t.Logf("bird output:\n%s\nbird log (tail):\n%s", stderr.String(), tail(string(log), 60))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if out, err := exec.Command("birdc", "-s", l.birdSock, "show", "status").CombinedOutput(); err == nil && strings.Contains(string(out), "Daemon is up") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bird not up after 10s: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// routes returns which of the two anycast prefixes BIRD has from the speaker.
func (l *lab) routes() (v4, v6 bool) {
	out, err := exec.Command("birdc", "-s", l.birdSock, "show", "route", "protocol", "speaker").CombinedOutput()
	if err != nil {
		l.t.Fatalf("birdc show route: %v\n%s", err, out)
	}
	s := string(out)
	return strings.Contains(s, anycast4), strings.Contains(s, anycast6)
}

// waitRoutes polls BIRD until both prefixes are present (want) or both
// absent, and returns how long that took; it fails the test after timeout.
func (l *lab) waitRoutes(want bool, timeout time.Duration, what string) time.Duration {
	l.t.Helper()
	start := time.Now()
	for {
		v4, v6 := l.routes()
		if v4 == want && v6 == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			l.t.Fatalf("%s: routes in BIRD after %v: %s=%v %s=%v, want %v\nbirdc show protocols all speaker:\n%s",
				what, timeout, anycast4, v4, anycast6, v6, want, l.birdc("show", "protocols", "all", "speaker"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stable checks that both routes stay in BIRD for d.
func (l *lab) stable(d time.Duration, what string) {
	l.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if v4, v6 := l.routes(); !v4 || !v6 {
			l.t.Fatalf("%s: route lost again (%s=%v %s=%v)\n%s", what, anycast4, v4, anycast6, v6,
				l.birdc("show", "protocols", "all", "speaker"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *lab) birdc(args ...string) string {
	out, _ := exec.Command("birdc", append([]string{"-s", l.birdSock}, args...)...).CombinedOutput()
	return string(out)
}

// startSpeaker re-executes the test binary as the speaker in the speaker namespace.
func (l *lab) startSpeaker() {
	t := l.t
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("ANNOUNCE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	cc, _ := json.Marshal(childConfig{
		Router: netip.MustParseAddr(routerAddr4), Local: netip.MustParseAddr(speakerAddr4),
		NextHop6: netip.MustParseAddr(speakerAddr6), BFD: l.bfd, Hold: 3 * time.Second, LogLevel: level,
	})
	cmd := exec.Command("ip", "netns", "exec", l.speakerNS, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(cc))
	stderr, err := os.Create(filepath.Join(l.dir, "speaker.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start speaker: %v", err)
	}
	l.child, l.childIn = cmd, in
	l.childLines = make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.childLines <- sc.Text()
		}
		close(l.childLines)
	}()
	t.Cleanup(func() {
		if l.childPID != 0 {
			_ = syscall.Kill(l.childPID, syscall.SIGCONT)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		stderr.Close()
		if t.Failed() {
			log, _ := os.ReadFile(stderr.Name())
			t.Logf("speaker log (tail):\n%s", tail(string(log), 80))
		}
	})
	line := l.expect("pid ", 10*time.Second)
	if _, err := fmt.Sscanf(line, "pid %d", &l.childPID); err != nil {
		t.Fatalf("speaker said %q: %v", line, err)
	}
	l.expect("ready", 10*time.Second)
}

func (l *lab) expect(prefix string, timeout time.Duration) string {
	l.t.Helper()
	select {
	case line, ok := <-l.childLines:
		if !ok {
			l.t.Fatalf("speaker exited, want %q", prefix)
		}
		if !strings.HasPrefix(line, prefix) {
			l.t.Fatalf("speaker said %q, want %q", line, prefix)
		}
		return line
	case <-time.After(timeout):
		l.t.Fatalf("speaker silent for %v, want %q", timeout, prefix)
	}
	return ""
}

func (l *lab) command(cmd string) {
	l.t.Helper()
	if _, err := fmt.Fprintln(l.childIn, cmd); err != nil {
		l.t.Fatalf("speaker command %q: %v", cmd, err)
	}
	l.expect("ok", 5*time.Second)
}

func (l *lab) signal(sig syscall.Signal) {
	l.t.Helper()
	if err := syscall.Kill(l.childPID, sig); err != nil {
		l.t.Fatalf("signal %v to speaker %d: %v", sig, l.childPID, err)
	}
}

type durations []time.Duration

func (d durations) String() string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	r := func(x time.Duration) time.Duration { return x.Round(time.Millisecond) }
	return fmt.Sprintf("n=%d min=%v p50=%v max=%v", len(s), r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// TestInteropBIRD: BIRD 2 learns the prefixes, loses them on withdraw, on
// kill, and via BFD on freeze, and gets them back on resume.
func TestInteropBIRD(t *testing.T) {
	freezeCycles(t, 3)
}

// TestInteropBIRDFreeze20 is the 20-cycle proof of issue 3. It runs only
// when named: go test -run TestInteropBIRDFreeze20 ./internal/announce/
func TestInteropBIRDFreeze20(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "Freeze20") {
		t.Skip("20 freeze cycles take minutes; run with -run TestInteropBIRDFreeze20")
	}
	freezeCycles(t, 20)
}

func freezeCycles(t *testing.T, cycles int) {
	l := newLab(t, true)
	start := time.Now()
	l.startSpeaker()
	up := l.waitRoutes(true, 15*time.Second, "initial announce")
	t.Logf("initial: routes in BIRD %v after the speaker started (%v after ready)",
		time.Since(start).Round(time.Millisecond), up.Round(time.Millisecond))
	l.stable(500*time.Millisecond, "initial")

	// Withdraw and announce again through Set.
	t0 := time.Now()
	l.command("none")
	withdraw := time.Since(t0) + l.waitRoutes(false, 5*time.Second, "withdraw")
	t0 = time.Now()
	l.command("all")
	announce := time.Since(t0) + l.waitRoutes(true, 5*time.Second, "announce again")
	t.Logf("Set(nil) -> gone from BIRD in %v; Set(all) -> back in %v",
		withdraw.Round(time.Millisecond), announce.Round(time.Millisecond))

	var detect, back durations
	for i := range cycles {
		l.stable(time.Second, fmt.Sprintf("cycle %d: before freeze", i))
		t0 := time.Now()
		l.signal(syscall.SIGSTOP)
		d := l.waitRoutes(false, 5*time.Second, fmt.Sprintf("cycle %d: freeze", i))
		detect = append(detect, d)
		time.Sleep(time.Second) // stay frozen a while, as a stalled process would
		t1 := time.Now()
		l.signal(syscall.SIGCONT)
		b := l.waitRoutes(true, 30*time.Second, fmt.Sprintf("cycle %d: resume", i))
		back = append(back, b)
		t.Logf("cycle %2d: withdrawn %v after SIGSTOP, back %v after SIGCONT (frozen %v)",
			i, d.Round(time.Millisecond), b.Round(time.Millisecond), t1.Sub(t0).Round(time.Millisecond))
		if d > maxDetect {
			t.Errorf("cycle %d: freeze detected after %v, want < %v", i, d, maxDetect)
		}
		if b > maxReannonce {
			t.Errorf("cycle %d: route back %v after resume, want < %v", i, b, maxReannonce)
		}
	}
	// A session that comes back only to be reset again must not pass.
	l.stable(3*time.Second, "after the last resume")
	t.Logf("freeze detection (SIGSTOP -> withdrawn in BIRD): %v", detect)
	t.Logf("re-announce (SIGCONT -> back in BIRD): %v", back)

	l.signal(syscall.SIGKILL)
	kill := l.waitRoutes(false, 5*time.Second, "kill")
	t.Logf("SIGKILL -> withdrawn in BIRD in %v", kill.Round(time.Millisecond))
}

// TestInteropHoldTime: without BFD a frozen speaker is found by the BGP hold
// timer (3 s here).
func TestInteropHoldTime(t *testing.T) {
	l := newLab(t, false)
	l.startSpeaker()
	l.waitRoutes(true, 15*time.Second, "initial announce")
	l.stable(time.Second, "initial")
	l.signal(syscall.SIGSTOP)
	d := l.waitRoutes(false, 10*time.Second, "freeze without bfd")
	t.Logf("hold-time failover without BFD: withdrawn %v after SIGSTOP (hold time 3s)", d.Round(time.Millisecond))
	if d < 2*time.Second {
		t.Errorf("withdrawn after %v without BFD: faster than a 3 s hold timer can be", d)
	}
	l.signal(syscall.SIGCONT)
	b := l.waitRoutes(true, 30*time.Second, "resume without bfd")
	t.Logf("resume without BFD: back %v after SIGCONT", b.Round(time.Millisecond))
	l.stable(2*time.Second, "after resume")
	l.signal(syscall.SIGKILL)
	kill := l.waitRoutes(false, 5*time.Second, "kill")
	t.Logf("SIGKILL -> withdrawn in BIRD in %v", kill.Round(time.Millisecond))
}
