//go:build linux

package node

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// floodEnv, when set in the environment of this test binary, makes it a
// flood sender instead of running tests: "addr seconds max senders rate"
// (rate: queries a second in all, 0 = as fast as it can; zone: the zone
// whose random subdomains it asks, example.com. when absent). The
// sender is a separate process, so that the node and it share the CPU as
// an attacker and a PoP would, and the test stops it by its PID.
const floodEnv = "ANYCASTD_E2E_FLOOD"

func init() {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		return
	}
	os.Exit(floodMain(spec))
}

// floodResult is what the sender prints when it is done.
type floodResult struct {
	Sent    uint64  `json:"sent"`
	Seconds float64 `json:"seconds"`
}

// floodMain sends random-subdomain queries (a NXDOMAIN each) for
// example.com. to addr from senders sockets on 127.0.<20+i>.1 (one /24
// each) until seconds have passed or max queries are sent, then prints a
// floodResult. It never reads the answers.
func floodMain(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 6 {
		fmt.Fprintf(os.Stderr, "%s: want \"addr seconds max senders rate zone\", got %q\n", floodEnv, spec)
		return 2
	}
	secs, err1 := strconv.ParseFloat(f[1], 64)
	maxSent, err2 := strconv.ParseUint(f[2], 10, 64)
	senders, err3 := strconv.Atoi(f[3])
	rate, err4 := strconv.ParseFloat(f[4], 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || secs <= 0 || secs > 30 || senders < 1 || senders > 16 || rate < 0 {
		fmt.Fprintf(os.Stderr, "%s: bad spec %q\n", floodEnv, spec)
		return 2
	}
	dst, err := net.ResolveUDPAddr("udp", f[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// The query: ID, flags, counts, then a 16-character label under
	// example.com, overwritten with random letters for each packet.
	m := new(dns.Msg)
	m.SetQuestion("aaaaaaaaaaaaaaaa."+dns.Fqdn(f[5]), dns.TypeA)
	tmpl, err := m.Pack()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	const labelAt = 12 + 1 // header, then the label's length byte
	var sent atomic.Uint64
	start := time.Now()
	stop := start.Add(time.Duration(secs * float64(time.Second)))
	var wg sync.WaitGroup
	for i := range senders {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, byte(20+i), 1)}, dst)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
		wg.Go(func() {
			p := append([]byte(nil), tmpl...)
			r := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			var mine uint64 // sent by this sender, for its share of rate
			for now := time.Now(); now.Before(stop); now = time.Now() {
				if rate > 0 {
					if ahead := time.Duration(float64(mine)/(rate/float64(senders))*float64(time.Second)) - now.Sub(start); ahead > 0 {
						time.Sleep(ahead)
					}
				}
				mine += 64
				for range 64 {
					if sent.Add(1) > maxSent {
						return
					}
					binary.BigEndian.PutUint16(p, uint16(r.Uint32()))
					v := r.Uint64()
					for j := range 16 {
						p[labelAt+j] = 'a' + byte(v>>(4*j))&15
					}
					_, _ = c.Write(p) // a full buffer just loses the packet, as on a wire
				}
			}
		})
	}
	wg.Wait()
	n := min(sent.Load(), maxSent)
	out, _ := json.Marshal(floodResult{Sent: n, Seconds: time.Since(start).Seconds()})
	fmt.Println(string(out))
	return 0
}

// flooder is a running flood sender process.
type flooder struct {
	cmd  *exec.Cmd
	out  strings.Builder
	done chan struct{}
}

// startFlood starts a flood sender against addr for at most seconds and
// max queries; it is killed by its PID when the test ends.
func startFlood(t *testing.T, addr string, seconds float64, maxSent uint64, senders int) *flooder {
	t.Helper()
	return startFloodAt(t, addr, seconds, maxSent, senders, 0, "example.com.")
}

// startFloodAt is startFlood at rate queries a second in all (0 = as fast
// as it can) for random subdomains of zone.
func startFloodAt(t *testing.T, addr string, seconds float64, maxSent uint64, senders int, rate float64, zone string) *flooder {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := &flooder{done: make(chan struct{})}
	f.cmd = exec.Command(exe, "-test.run=^$")
	f.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %g %d %d %g %s", floodEnv, addr, seconds, maxSent, senders, rate, zone))
	f.cmd.Stdout = &f.out
	f.cmd.Stderr = os.Stderr
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("start the flood sender: %v", err)
	}
	go func() { _ = f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		select {
		case <-f.done:
		default:
			_ = f.cmd.Process.Kill() // by its PID
			<-f.done
		}
	})
	return f
}

// wait waits for the sender to finish (at most limit) and returns what it
// sent.
func (f *flooder) wait(t *testing.T, limit time.Duration) floodResult {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(limit):
		_ = f.cmd.Process.Kill()
		<-f.done
		t.Fatalf("the flood sender did not end within %v", limit)
	}
	var r floodResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(f.out.String())), &r); err != nil {
		t.Fatalf("flood sender output %q: %v", f.out.String(), err)
	}
	return r
}

// udpDrops sums the kernel's receive drops of the UDP sockets bound to
// port (the node's sockets: more arrived than it could read).
func udpDrops(t *testing.T, port uint16) uint64 {
	t.Helper()
	var sum uint64
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		fh, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 13 || !strings.HasSuffix(f[1], fmt.Sprintf(":%04X", port)) {
				continue
			}
			if n, err := strconv.ParseUint(f[len(f)-1], 10, 64); err == nil {
				sum += n
			}
		}
		fh.Close()
	}
	return sum
}

// floodNodeConfig is a node with BGP (a passive peer nobody connects to:
// what it announces is anycastd_bgp_announced), the recommended RRL, its
// health check every 100 ms with an 80 ms timeout against its own address,
// whose source (127.0.0.1) is exempt. No per-source limit: the flood comes
// from four /24s at full rate, and every packet costs the node a lookup.
const floodNodeConfig = `identity:
  name: flood-test
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
metrics:
  listen: {{.MetricsAddr}}
limits:
  rrl: {rate: 20, slip: 2}
  source:
    rate: 1000000
    exempt: [127.0.0.1]
health:
  interval: 100ms
  timeout: 80ms
  rise: 2
  fall: 2
  query_addr: "{{(index .DNSAddrs 0)}}"
drain_period: 0s
bgp:
  asn: 65001
  router_id: 192.0.2.1
  listen_port: %d
  peers: [{address: 127.0.0.1, asn: 65000, passive: true}]
  announce: [{prefix: 192.0.2.53/32}]
`

// TestHealthUnderFlood floods a node from a separate process with
// random-subdomain queries from four loopback /24s, more than it answers
// on this machine's cores, for 5 s (bounded at 5 million queries). Absorb,
// don't withdraw: the node stays healthy and announced throughout — no
// health transition, anycastd_bgp_announced stays 1. Then, under the same
// flood, a real fault: the process runs out of file descriptors (prlimit
// to fewer than it has open), so that it can neither accept a TCP client
// nor open the check's sockets. That must still withdraw.
func TestHealthUnderFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for 5 s twice")
	}
	if os.Geteuid() != 0 {
		t.Skip("the fault (prlimit of another process's file descriptors) needs root")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bgpPort := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	writeFile(t, dir+"/example.com.zone", zoneText("example.com.", 1))
	n := startNode(t, nodeOpts{dir: dir, metrics: true, config: fmt.Sprintf(floodNodeConfig, bgpPort)})

	type state struct{ healthy, announced, transitions, held, flooded float64 }
	read := func() (state, error) {
		fams, err := scrape(n.ports.MetricsAddr())
		if err != nil {
			return state{}, err
		}
		var s state
		s.healthy, _ = metricValue(fams, "anycastd_health_healthy", nil)
		s.announced, _ = metricValue(fams, "anycastd_bgp_announced", nil)
		s.transitions, _ = metricValue(fams, "anycastd_health_transitions_total", nil)
		s.held, _ = metricValue(fams, "anycastd_health_held_rounds_total", nil)
		s.flooded, _ = metricValue(fams, "anycastd_health_flooded_total", nil)
		return s, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	var before state
	for {
		if before, err = read(); err == nil && before.healthy == 1 && before.announced == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy and announced within 10 s: %+v, %v", before, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 1. The flood alone: stay announced.
	drops0 := udpDrops(t, n.addr().Port())
	logAt := n.log.Len()
	const floodSeconds = 5
	f := startFlood(t, n.addr().String(), floodSeconds, 5_000_000, 4)
	var samples, down, unread int
	for {
		select {
		case <-f.done:
		default:
			time.Sleep(200 * time.Millisecond)
			s, err := read()
			switch {
			case err != nil:
				unread++ // the scrape is late under the flood; the counters below decide
			default:
				samples++
				if s.healthy != 1 || s.announced != 1 {
					down++
				}
			}
			continue
		}
		break
	}
	res := f.wait(t, 5*time.Second)
	after, err := read()
	if err != nil {
		t.Fatalf("metrics after the flood: %v", err)
	}
	drops := udpDrops(t, n.addr().Port()) - drops0
	floodLog := n.log.String()[logAt:]
	t.Logf("flood: %d queries in %.1f s (%.0f/s) from a separate process; the kernel dropped %d (%.0f%%) for want of a reader; "+
		"samples %d (%d not healthy and announced, %d unread); check runs passed as flooded %v, rounds held %v; transitions %v -> %v",
		res.Sent, res.Seconds, float64(res.Sent)/res.Seconds, drops, 100*float64(drops)/float64(max(res.Sent, 1)),
		samples, down, unread, after.flooded-before.flooded, after.held-before.held, before.transitions, after.transitions)
	if res.Sent < 100_000 {
		t.Errorf("the flood sent only %d queries: it did not load the node", res.Sent)
	}
	if down > 0 || after.transitions != before.transitions || after.healthy != 1 || after.announced != 1 {
		t.Errorf("the node did not stay announced under the flood: %d samples down, transitions %v -> %v, healthy %v, announced %v",
			down, before.transitions, after.transitions, after.healthy, after.announced)
	}
	if strings.Contains(floodLog, "msg=withdrawn") || strings.Contains(floodLog, "msg=unhealthy") {
		t.Errorf("the node withdrew under the flood:\n%s", grepLines(floodLog, "component=health"))
	}

	// 2. A real fault under the same flood: out of file descriptors.
	logAt = n.log.Len()
	f = startFlood(t, n.addr().String(), floodSeconds, 5_000_000, 4)
	time.Sleep(time.Second)
	pid := n.cmd.Process.Pid
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	limit := len(fds) - 3
	prlimit := func(v string) {
		t.Helper()
		if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--nofile="+v).CombinedOutput(); err != nil {
			t.Fatalf("prlimit --nofile=%s: %v\n%s", v, err, out)
		}
	}
	// Only the soft limit goes down (raising a hard limit back may not
	// be permitted), and comes back to what it was.
	out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--nofile", "--raw", "--noheadings", "--output=SOFT").Output()
	if err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	soft := strings.TrimSpace(string(out))
	prlimit(fmt.Sprintf("%d:", limit))
	restore := sync.OnceFunc(func() { prlimit(soft + ":") })
	t.Cleanup(restore)
	withdrawn := false
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(n.log.String()[logAt:], "msg=unhealthy") {
			withdrawn = true
			break
		}
	}
	restore()
	f.wait(t, 10*time.Second)
	if !withdrawn {
		t.Errorf("out of file descriptors (limit %d) under the flood, the node did not withdraw within 3.5 s:\n%s", limit, lastLines(n.log.String()[logAt:], 20))
	} else {
		t.Logf("out of file descriptors under the flood: withdrawn (%s)", firstLine(n.log.String()[logAt:], "msg=unhealthy"))
	}
}

// firstLine returns the first line of s that contains sub.
func firstLine(s, sub string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
