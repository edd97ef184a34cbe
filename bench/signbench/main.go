// Command signbench measures signing a whole zone on the control plane
// beside Knot DNS (issue 16): it generates a zone (bench/internal/benchkit's
// layout, 1,000,000 names by default), and in each run
//
//   - ours: starts `anycastd control` with a signing key file, creates the
//     zone from its text through the REST API, then enables signing
//     (PUT /v1/zones/{zone}/dnssec, the default policy: a CSK of
//     ECDSAP256SHA256, NSEC) and times it until the API answers, the zone
//     signed and committed to the store;
//   - Knot: starts knotd with the same zone file and a policy of the same
//     algorithm, key split, chain and signature lifetime (signing-threads
//     = the CPUs), waits for its first signing, then times `knotc -b
//     zone-sign` (a whole signing again) until the served SOA has the new
//     serial.
//
// For each it reports the wall time, the CPU time the server process used
// meanwhile, and its peak resident memory during the signing (VmHWM, reset
// through /proc/PID/clear_refs just before) and the resident memory of the
// loaded zone before it. Runs alternate the order of the two servers, so
// that both see the machine's load alike; the load average is printed
// with each figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/sign"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "signbench: %v\n", err)
		os.Exit(1)
	}
}

// origin is the zone the benchmark signs.
const origin = "bench.example."

// options are the command-line flags.
type options struct {
	Names       int
	Runs        int
	Only        []string
	AnycastdBin string
	Timeout     time.Duration
	OutDir      string
	JSON        bool
}

var serverNames = []string{"anycastd", "knot"}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("signbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "usage: go run ./bench/signbench [flags]\n\n"+
			"Signs a generated zone whole with anycastd control (through its API) and with Knot\n"+
			"(knotc zone-sign), in alternating runs, and reports time, CPU and memory.\n\nflags:\n")
		fs.PrintDefaults()
	}
	only := fs.String("only", strings.Join(serverNames, ","), "signers to run, comma-separated: anycastd,knot")
	fs.IntVar(&o.Names, "names", 1_000_000, "owner names in the generated zone")
	fs.IntVar(&o.Runs, "runs", 2, "runs of each signer, alternating")
	fs.StringVar(&o.AnycastdBin, "anycastd-bin", "", "anycastd binary (default: go build ./cmd/anycastd into the work directory)")
	fs.DurationVar(&o.Timeout, "timeout", 40*time.Minute, "limit of one signing")
	fs.StringVar(&o.OutDir, "out", "", "keep the work directory (zone, configurations, logs) here instead of a temporary one")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.Names < 100 {
		return nil, fmt.Errorf("-names %d: at least 100", o.Names)
	}
	if o.Runs < 1 {
		return nil, fmt.Errorf("-runs %d: at least 1", o.Runs)
	}
	picked, errs := benchkit.PickNames("only", "signer", *only, serverNames)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o.Only = picked
	return o, nil
}

// result is one signing.
type result struct {
	Signer     string  `json:"signer"`
	Run        int     `json:"run"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakMiB    float64 `json:"peak_rss_mib"`   // during the signing
	LoadedMiB  float64 `json:"loaded_rss_mib"` // before it
	Load1      string  `json:"loadavg"`        // at the start and the end
	Serial     uint32  `json:"serial"`
	// AnswerCut: the API's write timeout cut the answer; the time is
	// until the API showed the zone signed (asked every 100 ms).
	AnswerCut bool `json:"answer_cut,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := benchkit.NewLogger(stderr)
	dir, cleanup, err := benchkit.WorkDir(o.OutDir, "signbench-", logger)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := benchkit.BecomeSubreaper(); err != nil {
		return err
	}
	var bin string
	if slices.Contains(o.Only, "anycastd") {
		if bin, err = benchkit.AnycastdBinary(ctx, o.AnycastdBin, dir, logger); err != nil {
			return err
		}
	}
	if slices.Contains(o.Only, "knot") {
		if err := benchkit.CheckTools(benchkit.Tool{Bin: "knotd", Hint: "knot"}, benchkit.Tool{Bin: "knotc", Hint: "knot"}); err != nil {
			return err
		}
	}
	z, err := benchkit.GenerateZone(origin, o.Names, dir)
	if err != nil {
		return err
	}
	logger.Info("zone generated", "names", z.Names, "records", z.Records, "bytes", z.Bytes)
	var results []result
	for r := range o.Runs {
		order := o.Only
		if r%2 == 1 {
			order = slices.Clone(order)
			slices.Reverse(order)
		}
		for _, name := range order {
			rdir := filepath.Join(dir, fmt.Sprintf("%s-%d", name, r+1))
			if err := os.MkdirAll(rdir, 0o700); err != nil {
				return err
			}
			var res result
			switch name {
			case "anycastd":
				res, err = signAnycastd(ctx, o, bin, rdir, z, logger)
			case "knot":
				res, err = signKnot(ctx, o, rdir, z, logger)
			}
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", r+1, name, err)
			}
			res.Signer, res.Run = name, r+1
			logger.Info("signed", "signer", name, "run", r+1, "seconds", res.Seconds, "cpu_seconds", res.CPUSeconds, "peak_rss_mib", res.PeakMiB, "loadavg", res.Load1)
			results = append(results, res)
		}
	}
	if o.JSON {
		return benchkit.WriteJSON(stdout, map[string]any{"zone": z.Info(), "cpus": runtime.NumCPU(), "results": results})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "zone %s: %d names, %d records (before signing), %d CPUs\n\n", origin, z.Names, z.Records, runtime.NumCPU())
	rows := [][]string{{"signer", "run", "time", "CPU", "peak RSS", "RSS before", "load average (start → end)"}}
	for _, r := range results {
		cut := ""
		if r.AnswerCut {
			cut = " (*)"
		}
		rows = append(rows, []string{r.Signer, strconv.Itoa(r.Run), fmt.Sprintf("%.1f s%s", r.Seconds, cut), fmt.Sprintf("%.1f s", r.CPUSeconds),
			fmt.Sprintf("%.0f MiB", r.PeakMiB), fmt.Sprintf("%.0f MiB", r.LoadedMiB), r.Load1})
	}
	benchkit.WriteTable(&b, rows)
	for _, r := range results {
		if r.AnswerCut {
			b.WriteString("\n(*) the API's write timeout (2 minutes) cut the answer: the time is until the API showed the zone signed\n")
			break
		}
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}

// meter measures a process from start until stop.
type meter struct {
	pid    int
	start  time.Time
	ticks  uint64
	loaded float64
	load   string
}

func startMeter(pid int) (*meter, error) {
	m := &meter{pid: pid, load: loadavg()}
	mem, err := benchkit.ReadMem(pid, false)
	if err != nil {
		return nil, err
	}
	m.loaded = float64(mem.RSS) / 1024
	// Reset the peak resident set size to the current one (proc(5)).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("reset the peak RSS of %d: %w", pid, err)
	}
	st, err := benchkit.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	m.ticks, m.start = st.Ticks, time.Now()
	return m, nil
}

// clockTicks is the unit of /proc/PID/stat's times (USER_HZ).
const clockTicks = 100

func (m *meter) stop() (result, error) {
	d := time.Since(m.start)
	st, err := benchkit.ReadStat(m.pid)
	if err != nil {
		return result{}, err
	}
	mem, err := benchkit.ReadMem(m.pid, false)
	if err != nil {
		return result{}, err
	}
	return result{
		Seconds:    d.Seconds(),
		CPUSeconds: float64(st.Ticks-m.ticks) / clockTicks,
		PeakMiB:    float64(mem.HWM) / 1024,
		LoadedMiB:  m.loaded,
		Load1:      m.load + " → " + loadavg(),
	}, nil
}

// loadavg is the 1-minute load average.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// token is the API token of the benchmark's control plane.
const token = "signbench-token-0123456789abcdef" //nolint:gosec // a throwaway token for a loopback API

// signAnycastd creates the zone on a new `anycastd control` and enables
// signing.
func signAnycastd(ctx context.Context, o *options, bin, dir string, z *benchkit.Zone, logger interface {
	Info(string, ...any)
}) (result, error) {
	lo := netip.MustParseAddr("127.0.0.1")
	apiAddr, err := benchkit.FreePort(lo)
	if err != nil {
		return result{}, err
	}
	keyFile := filepath.Join(dir, "signing.key")
	if err := os.WriteFile(keyFile, sign.GenerateKeyFile(), 0o600); err != nil {
		return result{}, err
	}
	cfg := filepath.Join(dir, "control.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `data_dir: %q
api:
  listen: %q
  tokens: [%q]
  max_body: 1073741824
signing:
  key_file: %q
log: {level: warn}
`, filepath.Join(dir, "data"), apiAddr.String(), token, keyFile), 0o600); err != nil {
		return result{}, err
	}
	s, err := benchkit.Start(benchkit.Launch{Name: "anycastd", Argv: []string{bin, "control", "-config", cfg}}, -1, 0, dir, apiAddr)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = s.Stop(time.Minute) }()
	cl, err := apiclient.New("http://"+apiAddr.String(), token, &http.Client{Timeout: o.Timeout})
	if err != nil {
		return result{}, err
	}
	if err := waitAPI(ctx, cl, s); err != nil {
		return result{}, err
	}
	f, err := os.Open(z.ZonePath)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	_, err = cl.CreateZoneText(ctx, origin, f, apiclient.CreateOptions{})
	_ = f.Close()
	if err != nil {
		// The API's write timeout (2 minutes) cuts the answer to a
		// long write, which goes on: wait for the zone to be there.
		logger.Info("create: no answer; waiting for the zone", "err", err)
		if err := poll(ctx, o.Timeout, s, func() bool { _, err := cl.Zone(ctx, origin); return err == nil }); err != nil {
			return result{}, fmt.Errorf("create the zone: %w", err)
		}
	}
	logger.Info("zone created through the API", "seconds", time.Since(start).Seconds())
	// The store's background work after the import (a WAL checkpoint)
	// is not the signing's.
	quiet(s.PID())
	m, err := startMeter(s.PID())
	if err != nil {
		return result{}, err
	}
	st, err := cl.SetDNSSEC(ctx, origin, api.PutDNSSEC{Enabled: true})
	cut := err != nil
	if cut {
		logger.Info("enable: no answer; waiting for the zone to be signed", "err", err)
		if err := poll(ctx, o.Timeout, s, func() bool {
			st, err = cl.DNSSEC(ctx, origin)
			return err == nil && st.Enabled
		}); err != nil {
			return result{}, fmt.Errorf("enable signing: %w", err)
		}
	}
	res, err := m.stop()
	res.Serial, res.AnswerCut = st.Serial, cut
	return res, err
}

// poll calls done every 100 ms until it is true.
func poll(ctx context.Context, limit time.Duration, s *benchkit.Server, done func() bool) error {
	deadline := time.Now().Add(limit)
	for !done() {
		if s.Exited() {
			return fmt.Errorf("anycastd control exited: %s", s.LogTail())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not done after %v", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// waitAPI waits until the control plane answers.
func waitAPI(ctx context.Context, cl *apiclient.Client, s *benchkit.Server) error {
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := cl.ListZones(ctx); err == nil {
			return nil
		}
		if s.Exited() {
			return fmt.Errorf("anycastd control exited: %s", s.LogTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("anycastd control's API does not answer: %s", s.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quiet waits (up to a minute) until pid has used no CPU for a second.
func quiet(pid int) {
	last, _ := benchkit.ReadStat(pid)
	for range 60 {
		time.Sleep(time.Second)
		now, err := benchkit.ReadStat(pid)
		if err != nil || now.Ticks == last.Ticks {
			return
		}
		last = now
	}
}

// knotPolicy is the Knot policy of the same algorithm, key split, chain
// and signature lifetime as ours, signing on every CPU.
func knotPolicy() string {
	return fmt.Sprintf(`    algorithm: ecdsap256sha256
    single-type-signing: on
    nsec3: off
    rrsig-lifetime: 14d
    rrsig-refresh: 5d
    signing-threads: %d
`, runtime.NumCPU())
}

// signKnot starts knotd, waits for its first signing, and times `knotc
// zone-sign`.
func signKnot(ctx context.Context, o *options, dir string, z *benchkit.Zone, logger interface {
	Info(string, ...any)
}) (result, error) {
	addr, err := benchkit.FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return result{}, err
	}
	k := benchkit.Knot{Dir: dir, Addr: addr, Origin: origin, ZonePath: z.ZonePath, Sign: knotPolicy()}
	launch, err := k.Prepare()
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	s, err := benchkit.Start(launch, -1, 0, dir, addr)
	if err != nil {
		return result{}, err
	}
	defer func() { _ = s.Stop(time.Minute) }()
	first, err := waitSigned(ctx, addr, 0, o.Timeout, s)
	if err != nil {
		return result{}, fmt.Errorf("first signing: %w", err)
	}
	logger.Info("knotd loaded and signed the zone", "seconds", time.Since(start).Seconds(), "serial", first)
	quiet(s.PID())
	m, err := startMeter(s.PID())
	if err != nil {
		return result{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	// knotc's arguments: the benchmark's own work directory and timeout.
	out, err := exec.CommandContext(sctx, "knotc", "-s", k.Socket(), "-b", "-t", //nolint:gosec // see above
		strconv.Itoa(int(o.Timeout.Seconds())), "zone-sign", origin).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("knotc zone-sign: %w: %s", err, out)
	}
	serial, err := waitSigned(ctx, addr, first, o.Timeout, s)
	if err != nil {
		return result{}, fmt.Errorf("zone-sign: %w", err)
	}
	res, err := m.stop()
	res.Serial = serial
	return res, err
}

// waitSigned waits until knotd answers the zone's SOA, signed, with a
// serial other than old, and returns it.
func waitSigned(ctx context.Context, addr netip.AddrPort, old uint32, limit time.Duration, s *benchkit.Server) (uint32, error) {
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion(origin, dns.TypeSOA)
	m.SetEdns0(1232, true)
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if s.Exited() {
			return 0, fmt.Errorf("knotd exited: %s", s.LogTail())
		}
		if r, _, err := c.ExchangeContext(ctx, m, addr.String()); err == nil && r.Rcode == dns.RcodeSuccess {
			var serial uint32
			signed := false
			for _, rr := range r.Answer {
				switch x := rr.(type) {
				case *dns.SOA:
					serial = x.Serial
				case *dns.RRSIG:
					signed = true
				}
			}
			if signed && serial != old && serial != 0 {
				return serial, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no signed SOA other than serial %d after %v", old, limit)
}
