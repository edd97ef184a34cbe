package benchkit

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

// Launch is how to start one server under test.
type Launch struct {
	Name string
	Argv []string // program and arguments, without taskset
	Env  []string // added to the environment
	// Check, when set, validates the generated configuration before the
	// server is started, so that a configuration mistake gives the
	// checker's message rather than a server that never gets ready.
	Check []string
}

// Server is a server process the benchmark started.
type Server struct {
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

// Pinned returns the command that runs argv on CPU cpu with taskset (on
// any CPU when cpu < 0), at niceness nice when it is not 0. taskset and nice
// set the attribute and exec the next program, so the PID is argv's, and
// every thread and forked process inherits both.
func Pinned(cpu, nice int, argv []string) (string, []string) {
	cmd := argv
	if cpu >= 0 {
		cmd = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, cmd...)
	}
	if nice != 0 {
		cmd = append([]string{"nice", "-n", strconv.Itoa(nice)}, cmd...)
	}
	return cmd[0], cmd[1:]
}

// SetAutogroupNice gives the scheduler autogroup of pid niceness nice. With
// autogroups (kernel.sched_autogroup_enabled=1) the scheduler first shares
// a core fairly between sessions and only then by niceness inside each, so
// nice alone does not put a process ahead of another session's work. A
// process started with Setsid has an autogroup of its own, whose niceness
// this sets. Without autogroups it does nothing.
func SetAutogroupNice(pid, nice int) error {
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

// Start starts l in dir, pinned to CPU cpu unless cpu < 0 (see Pinned),
// with nice != 0 in a session of its own at that niceness (see
// SetAutogroupNice). Its standard output and error go to dir/NAME.stderr.
func Start(l Launch, cpu, nice int, dir string, addr netip.AddrPort) (*Server, error) {
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
	prog, args := Pinned(cpu, nice, l.Argv)
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), l.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// If the benchmark dies, the kernel kills the server it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: nice != 0}
	s := &Server{Name: l.Name, Addr: addr, cmd: cmd, logPath: logPath,
		done: make(chan struct{}), seen: map[int]bool{}}
	s.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", l.Name, err)
	}
	if err := SetAutogroupNice(cmd.Process.Pid, nice); err != nil {
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

// PID is the process the benchmark started.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Tree returns the live processes of the server and remembers them.
func (s *Server) Tree() []int {
	select {
	case <-s.done:
		return nil
	default:
	}
	t := ProcessTree(s.PID())
	for _, pid := range t[1:] {
		s.seen[pid] = true
	}
	return t
}

// Exited says whether the process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// ExitErr says how the process ended, once it has.
func (s *Server) ExitErr() error {
	if s.waitErr == nil {
		return errExitedZero
	}
	return s.waitErr
}

// errExitedZero is a server that ended with status 0 while it should serve.
var errExitedZero = errors.New("exit status 0")

// LogTail returns the end of the server's stderr for error messages.
func (s *Server) LogTail() string {
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
// were reparented to us, see BecomeSubreaper) are killed by PID and reaped.
func (s *Server) Stop(timeout time.Duration) error {
	s.Tree()
	var errs []error
	if !s.Exited() {
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
			st, err := ReadStat(pid)
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

// BecomeSubreaper makes processes that the servers fork and orphan become
// children of the benchmark, so it can reap them and be sure a PID it
// kills is one of its own.
func BecomeSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
	}
	return nil
}

// FreePort returns a port that is free for both UDP and TCP on ip.
func FreePort(ip netip.Addr) (netip.AddrPort, error) {
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

// WaitAnswer polls the server over UDP with a query for name and qtype
// until ok accepts the answer, the process exits, or ctx ends. It returns
// when the first accepted answer arrived.
func WaitAnswer(ctx context.Context, s *Server, name string, qtype uint16, ok func(*Message) bool) (time.Time, error) {
	conn, err := net.ListenUDP("udp", nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("poll socket: %w", err)
	}
	defer func() { _ = conn.Close() }()
	dst := net.UDPAddrFromAddrPort(s.Addr)
	buf := make([]byte, 65535)
	for id := uint16(1); ; id++ {
		if s.Exited() {
			return time.Time{}, fmt.Errorf("%s exited before answering: %w\n%s", s.Name, s.ExitErr(), s.LogTail())
		}
		if err := ctx.Err(); err != nil {
			return time.Time{}, fmt.Errorf("%s not ready: %w", s.Name, err)
		}
		msg, err := BuildQuery(id, name, qtype)
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
			m, err := ParseMessage(buf[:n])
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

// SOAReady accepts an authoritative SOA answer.
func SOAReady(m *Message) bool {
	return m.RCode == RCodeNoError && m.AA && CountType(m.Answer, TypeSOA) == 1
}
