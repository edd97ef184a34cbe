package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// launch is how to start one server under test.
type launch struct {
	Name string
	Argv []string // program and arguments, without taskset
	Env  []string // added to the environment
	// Check, when set, validates the generated configuration before the
	// server is started, so that a configuration mistake gives the
	// checker's message rather than a server that never gets ready.
	Check []string
}

// serverNames lists the servers in the order they run.
var serverNames = []string{"anycastd", "nsd", "knot"}

// prepareServer writes the configuration of server name into dir.
func prepareServer(name, dir, anycastdBin string, addr netip.AddrPort, zd *zoneData) (launch, error) {
	switch name {
	case "anycastd":
		return prepareAnycastd(anycastdBin, addr, zd), nil
	case "nsd":
		return prepareNSD(dir, addr, zd)
	case "knot":
		return prepareKnot(dir, addr, zd)
	}
	return launch{}, fmt.Errorf("unknown server %q", name)
}

func prepareAnycastd(bin string, addr netip.AddrPort, zd *zoneData) launch {
	return launch{
		Name: "anycastd",
		Argv: []string{bin, "node",
			"-listen", addr.String(),
			"-zone", zd.Origin + "=" + zd.ZonePath,
			"-nsid", "bench-anycastd",
			"-log-level", "warn"},
		// One P: the comparison is per core, like NSD's one server process
		// and Knot's one UDP worker.
		Env: []string{"GOMAXPROCS=1"},
	}
}

func nsdConf(dir string, addr netip.AddrPort, zd *zoneData) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n")
	for _, kv := range [][2]string{
		{"server-count", "1"},
		{"ip-address", addr.Addr().String()},
		{"port", strconv.Itoa(int(addr.Port()))},
		{"username", q("")},
		{"chroot", q("")},
		{"zonesdir", q(dir)},
		{"pidfile", q(filepath.Join(dir, "nsd.pid"))},
		{"database", q("")},
		{"zonelistfile", q(filepath.Join(dir, "zone.list"))},
		{"xfrdfile", q(filepath.Join(dir, "xfrd.state"))},
		{"xfrdir", q(dir)},
		{"logfile", q(filepath.Join(dir, "nsd.log"))},
		{"verbosity", "1"},
		{"identity", q("bench-nsd")},
		// Response rate limiting is on by default in NSD builds with RRL;
		// a benchmark from one source address would measure the limiter.
		{"rrl-ratelimit", "0"},
		{"rrl-whitelist-ratelimit", "0"},
		{"tcp-count", "128"},
	} {
		fmt.Fprintf(&b, "\t%s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "remote-control:\n\tcontrol-enable: no\n")
	fmt.Fprintf(&b, "zone:\n\tname: %s\n\tzonefile: %s\n", q(zd.Origin), q(zd.ZonePath))
	return b.String()
}

func prepareNSD(dir string, addr netip.AddrPort, zd *zoneData) (launch, error) {
	conf := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(conf, []byte(nsdConf(dir, addr, zd)), 0o600); err != nil {
		return launch{}, fmt.Errorf("write nsd config: %w", err)
	}
	l := launch{Name: "nsd", Argv: []string{"nsd", "-d", "-c", conf}}
	if _, err := exec.LookPath("nsd-checkconf"); err == nil {
		l.Check = []string{"nsd-checkconf", conf}
	}
	return l, nil
}

func knotConf(dir string, addr netip.AddrPort, zd *zoneData) string {
	return fmt.Sprintf(`server:
    rundir: %[1]q
    pidfile: %[2]q
    listen: %[3]s@%[4]d
    identity: "bench-knot"
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: %[1]q
control:
    listen: %[5]q
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: %[1]q
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: %[6]q
    file: %[7]q
`, dir, filepath.Join(dir, "knot.pid"), addr.Addr(), addr.Port(),
		filepath.Join(dir, "knot.sock"), zd.Origin, zd.ZonePath)
}

func prepareKnot(dir string, addr netip.AddrPort, zd *zoneData) (launch, error) {
	conf := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(conf, []byte(knotConf(dir, addr, zd)), 0o600); err != nil {
		return launch{}, fmt.Errorf("write knot config: %w", err)
	}
	l := launch{Name: "knot", Argv: []string{"knotd", "-c", conf}}
	if _, err := exec.LookPath("knotc"); err == nil {
		l.Check = []string{"knotc", "-c", conf, "conf-check"}
	}
	return l, nil
}

// runningServer is a server process the benchmark started.
type runningServer struct {
	Name    string
	Addr    netip.AddrPort
	Started time.Time
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has been waited for
	waitErr error
	// seen holds every descendant observed, so that stop can end forked
	// processes that outlive the one we started.
	seen map[int]bool
}

// pinned returns the command that runs argv on CPU cpu with taskset, at
// niceness nice when it is not 0. taskset and nice set the attribute and
// exec the next program, so the PID is argv's, and every thread and forked
// process inherits both.
func pinned(cpu, nice int, argv []string) (string, []string) {
	args := append([]string{"-c", strconv.Itoa(cpu)}, argv...)
	if nice == 0 {
		return "taskset", args
	}
	return "nice", append([]string{"-n", strconv.Itoa(nice), "taskset"}, args...)
}

// setAutogroupNice gives the scheduler autogroup of pid niceness nice. With
// autogroups (kernel.sched_autogroup_enabled=1) the scheduler first shares
// a core fairly between sessions and only then by niceness inside each, so
// nice alone does not put a process ahead of another session's work. A
// process started with Setsid has an autogroup of its own, whose niceness
// this sets. Without autogroups it does nothing.
func setAutogroupNice(pid, nice int) error {
	if nice == 0 {
		return nil
	}
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err != nil || strings.TrimSpace(string(b)) != "1" {
		return nil
	}
	path := fmt.Sprintf("/proc/%d/autogroup", pid)
	if err := os.WriteFile(path, []byte(strconv.Itoa(nice)), 0); err != nil {
		return fmt.Errorf("set autogroup niceness %d: %w", nice, err)
	}
	return nil
}

// startServer starts l pinned to CPU cpu (see pinned), with nice != 0 in a
// session of its own at that niceness (see setAutogroupNice).
func startServer(l launch, cpu, nice int, dir string, addr netip.AddrPort) (*runningServer, error) {
	if len(l.Check) > 0 {
		if out, err := exec.Command(l.Check[0], l.Check[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("check %s config: %w: %s", l.Name, err, strings.TrimSpace(string(out)))
		}
	}
	logPath := filepath.Join(dir, l.Name+".stderr")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", l.Name, err)
	}
	defer logf.Close() // the child has its own copy
	prog, args := pinned(cpu, nice, l.Argv)
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), l.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// If the benchmark dies, the kernel kills the server it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: nice != 0}
	s := &runningServer{Name: l.Name, Addr: addr, cmd: cmd, logPath: logPath,
		done: make(chan struct{}), seen: map[int]bool{}}
	s.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", l.Name, err)
	}
	if err := setAutogroupNice(cmd.Process.Pid, nice); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start %s: %w", l.Name, err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

func (s *runningServer) PID() int { return s.cmd.Process.Pid }

// Tree returns the live processes of the server and remembers them.
func (s *runningServer) Tree() []int {
	select {
	case <-s.done:
		return nil
	default:
	}
	t := processTree(s.PID())
	for _, pid := range t[1:] {
		s.seen[pid] = true
	}
	return t
}

func (s *runningServer) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// exitErr says how the process ended, once it has.
func (s *runningServer) exitErr() error {
	if s.waitErr == nil {
		return errExitedZero
	}
	return s.waitErr
}

// errExitedZero is a server that ended with status 0 while it should serve.
var errExitedZero = errors.New("exit status 0")

// logTail returns the end of the server's stderr for error messages.
func (s *runningServer) logTail() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Stop sends SIGTERM to the process we started, waits, and escalates to
// SIGKILL. Descendants seen earlier that are still alive afterwards (they
// were reparented to us, see becomeSubreaper) are killed by PID and reaped.
func (s *runningServer) Stop(timeout time.Duration) error {
	s.Tree()
	var errs []error
	if !s.exited() {
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("sigterm %s: %w", s.Name, err))
		}
		select {
		case <-s.done:
		case <-time.After(timeout):
			errs = append(errs, fmt.Errorf("%s did not exit %v after SIGTERM; killed", s.Name, timeout))
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	deadline := time.Now().Add(timeout)
	for pid := range s.seen {
		for {
			// A descendant that outlived its parent is our child now; only
			// then is the PID certainly still the process we started.
			st, err := readStat(pid)
			if err != nil || st.PPID != os.Getpid() {
				break
			}
			var ws syscall.WaitStatus
			if wpid, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); wpid == pid {
				break
			}
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// becomeSubreaper makes processes that the servers fork and orphan become
// children of the benchmark, so it can reap them and be sure a PID it
// kills is one of its own.
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// freePort returns a port that is free for both UDP and TCP on ip.
func freePort(ip netip.Addr) (netip.AddrPort, error) {
	for range 50 {
		tl, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("find free port: %w", err)
		}
		ap := netip.MustParseAddrPort(tl.Addr().String())
		ul, err := net.ListenPacket("udp", ap.String())
		tl.Close()
		if err != nil {
			continue
		}
		_ = ul.Close()
		return ap, nil
	}
	return netip.AddrPort{}, errors.New("find free port: no port free for both udp and tcp")
}

// waitAnswer polls the server over UDP with q until ok accepts the answer,
// the process exits, or ctx ends. It returns when the first accepted answer
// arrived.
func waitAnswer(ctx context.Context, s *runningServer, q query, ok func(*message) bool) (time.Time, error) {
	conn, err := net.ListenUDP("udp", nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("poll socket: %w", err)
	}
	defer func() { _ = conn.Close() }()
	dst := net.UDPAddrFromAddrPort(s.Addr)
	buf := make([]byte, 65535)
	for id := uint16(1); ; id++ {
		if s.exited() {
			return time.Time{}, fmt.Errorf("%s exited before answering: %w\n%s", s.Name, s.exitErr(), s.logTail())
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, fmt.Errorf("%s not ready: %w", s.Name, err)
		}
		msg, err := buildQuery(id, q.Name, q.Type)
		if err != nil {
			return time.Time{}, err
		}
		if _, err := conn.WriteToUDP(msg, dst); err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// Read until the reply to this id or 10 ms of silence.
		deadline := time.Now().Add(10 * time.Millisecond)
		for {
			_ = conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				break // timeout or ICMP port unreachable: not listening yet
			}
			at := time.Now()
			m, err := parseMessage(buf[:n])
			if err != nil || m.ID != id {
				continue
			}
			if ok(m) {
				return at, nil
			}
			time.Sleep(time.Until(deadline))
			break
		}
	}
}

// soaReady accepts an authoritative SOA answer.
func soaReady(m *message) bool {
	return m.RCode == rcodeNoError && m.AA && countType(m.Answer, typeSOA) == 1
}
