//go:build linux

package catalog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/announce/bgptest"
	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	token     = "catalog-test-token-0123456789"
	keyName   = "xfr-key."
	keySecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	catalog   = "catalog.invalid."
	nodeASN   = 64512
	routerASN = 64513
	// The anycast prefix, a documentation address; it only travels over
	// the BGP session on loopback.
	prefix = "192.0.2.53/32"
)

// zoneCount is the number of zones: 10,000 (1,000 with -short) unless
// CATALOG_ZONES says.
func zoneCount(t *testing.T) int {
	t.Helper()
	s := os.Getenv("CATALOG_ZONES")
	switch {
	case s == "" && testing.Short():
		return 1_000
	case s == "":
		return 10_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("CATALOG_ZONES=%q: want a positive number", s)
	}
	return n
}

func zoneName(i int) string { return fmt.Sprintf("z%05d.example.", i) }

// start runs an anycastd process until the end of the test
// (testkit.StartProcess): SIGTERM, SIGKILL 20s later; the test fails if it
// does not exit with status 0, and shows its log if it failed.
func start(t *testing.T, name, bin, logPath string, args ...string) *testkit.Process {
	t.Helper()
	p := testkit.StartProcess(t, name, logPath, append([]string{bin}, args...)...)
	p.StopAfter = 20 * time.Second
	p.CheckExit = true
	return p
}

// cpu returns the CPU time (user and system) the process has used so far.
func cpu(p *testkit.Process) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat: %q", data)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// router is a GoBGP router in the test process (package bgptest) that
// connects to the node's BGP port on loopback.
type router struct{ *bgptest.Router }

var anycastPrefix = netip.MustParsePrefix(prefix)

func startRouter(t *testing.T, nodePort uint16) *router {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	r, err := bgptest.Start(bgptest.Config{
		ASN: routerASN, RouterID: netip.MustParseAddr("192.0.2.254"), Local: lo,
		Speaker: lo, SpeakerPort: nodePort, SpeakerASN: nodeASN,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return &router{r}
}

// announced reports whether the router has the anycast prefix from the node.
func (r *router) announced() bool { return r.Has(anycastPrefix) }

// watch polls the router from now on and sends, once, the moment the
// prefix first arrived and the number of zones the node served right then.
// Zones are never removed during the test, so fewer than all of them at that
// moment means the prefix came before the zones.
type arrival struct {
	at    time.Time
	zones int
	err   error
}

func (r *router) watch(ctx context.Context, metricsURL string) <-chan arrival {
	out := make(chan arrival, 1)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- arrival{err: ctx.Err()}
				return
			case <-tick.C:
			}
			if r.announced() {
				at := time.Now()
				n, err := servedZones(metricsURL)
				out <- arrival{at: at, zones: n, err: err}
				return
			}
		}
	}()
	return out
}

func (r *router) waitWithdrawn(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for r.announced() {
		if time.Now().After(deadline) {
			t.Fatalf("prefix still announced %v after the node stopped", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var metricsClient = &http.Client{Timeout: 2 * time.Second}

// servedZones reads anycastd_zones from the node's metrics.
func servedZones(url string) (int, error) {
	resp, err := metricsClient.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "anycastd_zones "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no anycastd_zones in the metrics")
}

// waitServed polls the metrics until the node serves want zones.
func waitServed(t *testing.T, url string, want int, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	last, lastErr := 0, error(nil)
	for time.Now().Before(deadline) {
		n, err := servedZones(url)
		if err == nil && n >= want {
			if n != want {
				t.Fatalf("node serves %d zones, want %d", n, want)
			}
			return time.Now()
		}
		last, lastErr = n, err
		// A scrape with 10,000 zones is 20,000 series: polling faster
		// would load the node it measures.
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("node serves %d of %d zones after %v (last error %v)", last, want, limit, lastErr)
	return time.Time{}
}

// checkSerials asks the node for the SOA of the zones listed (indexes into
// serials) and fails the test for every one not served with its serial.
func checkSerials(t *testing.T, addr string, serials []uint32, which []int) {
	t.Helper()
	var wg sync.WaitGroup
	var bad atomic.Int64
	next := atomic.Int64{}
	errs := make(chan string, 10)
	for range 8 {
		wg.Go(func() {
			c := &dns.Client{Timeout: 2 * time.Second}
			for {
				k := int(next.Add(1)) - 1
				if k >= len(which) {
					return
				}
				i := which[k]
				name := zoneName(i)
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeSOA)
				var r *dns.Msg
				var err error
				for range 3 {
					if r, _, err = c.Exchange(m, addr); err == nil {
						break
					}
				}
				msg := ""
				switch {
				case err != nil:
					msg = fmt.Sprintf("%s SOA: %v", name, err)
				case r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1:
					msg = fmt.Sprintf("%s SOA: rcode %s aa %v answers %d", name, dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
				default:
					soa, ok := r.Answer[0].(*dns.SOA)
					if !ok || soa.Serial != serials[i] {
						msg = fmt.Sprintf("%s SOA: %v, want serial %d", name, r.Answer[0], serials[i])
					}
				}
				if msg != "" {
					bad.Add(1)
					select {
					case errs <- msg:
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d of %d zones not served with their serial", n, len(which))
	}
}

// createZones creates n zones through the API with concurrent clients and
// returns their serials.
func createZones(t *testing.T, apiURL string, n int) []uint32 {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	cl, err := apiclient.New(apiURL, token, &http.Client{Transport: tr, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	serials := make([]uint32, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				info, err := cl.CreateZone(t.Context(), api.CreateZone{Name: zoneName(i), Records: []string{
					"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
					"@ 3600 IN NS ns1",
					"ns1 3600 IN A 192.0.2.1",
					fmt.Sprintf("www 300 IN A 198.51.100.%d", i%250+1),
				}})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("create %s: %w", zoneName(i), err)
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
				serials[i] = info.Serial
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return serials
}

// waitCatalog transfers the catalog from the control plane until it lists
// n members.
func waitCatalog(t *testing.T, xfrAddr string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	got := -1
	var lastErr error
	for time.Now().Before(deadline) {
		m := new(dns.Msg)
		m.SetAxfr(catalog)
		m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
		tr := &dns.Transfer{TsigSecret: map[string]string{keyName: keySecret}}
		envs, err := tr.In(m, xfrAddr)
		if err == nil {
			got = 0
			for env := range envs {
				if env.Error != nil {
					err = env.Error
					continue
				}
				for _, rr := range env.RR {
					if rr.Header().Rrtype == dns.TypePTR {
						got++
					}
				}
			}
		}
		if err == nil && got == n {
			return
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("catalog lists %d members after %v, want %d (last error %v)", got, limit, n, lastErr)
}

// sample returns k indexes spread over [0, n), first and last included.
func sample(n, k int) []int {
	if k >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, k)
	for j := range out {
		out[j] = j * (n - 1) / (k - 1)
	}
	return out
}

func TestCatalog10k(t *testing.T) {
	n := zoneCount(t)
	bin := testkit.BuildAnycastd(t)
	dir := t.TempDir()
	logDir := dir
	if d := os.Getenv("CATALOG_LOGDIR"); d != "" {
		logDir = d // kept after the test
	}
	apiAddr := testkit.FreeAddr(t)
	xfrAddr := testkit.FreeAddr(t)
	dnsAddr := testkit.FreeAddr(t)
	metricsAddr := testkit.FreeAddr(t)
	adminAddr := testkit.FreeAddr(t)
	bgpPort := testkit.FreePort(t)
	metricsURL := "http://" + metricsAddr + "/metrics"

	ctlCfg := filepath.Join(dir, "control.yaml")
	writeFile(t, ctlCfg, fmt.Sprintf(`data_dir: %q
api:
  listen: %q
  tokens: [%q]
xfr:
  listen: [%q]
  tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s}]
  notify: [{addr: %q, key: %s}]
  catalog: {zone: %s}
log: {level: info}
`, filepath.Join(dir, "control"), apiAddr, token, xfrAddr, keyName, keySecret, keyName, dnsAddr, keyName, catalog))
	nodeCfg := filepath.Join(dir, "node.yaml")
	writeFile(t, nodeCfg, fmt.Sprintf(`identity: {name: catalog-pop}
listen: [%q]
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: %s
  primaries: [{addr: %q, key: %s}]
metrics: {listen: %q}
admin: {listen: %q}
log: {level: info}
drain_period: 0s
bgp:
  asn: %d
  router_id: 192.0.2.1
  listen_port: %d
  peers: [{address: 127.0.0.1, asn: %d, passive: true}]
  announce: [{prefix: %s}]
`, dnsAddr, filepath.Join(dir, "node"), keyName, keySecret, catalog, xfrAddr, keyName, metricsAddr, adminAddr,
		nodeASN, bgpPort, routerASN, prefix))

	// The control plane, and the zones through its API.
	ctl := start(t, "control", bin, filepath.Join(logDir, "control.log"), "control", "-config", ctlCfg)
	testkit.WaitHTTP(t, "http://"+apiAddr+api.PathZones, 15*time.Second)
	t0 := time.Now()
	serials := createZones(t, "http://"+apiAddr, n)
	create := time.Since(t0)
	t.Logf("created %d zones through the API in %v (%.0f/s)", n, create.Round(time.Millisecond), float64(n)/create.Seconds())
	waitCatalog(t, xfrAddr, n, 60*time.Second)

	// A new, empty PoP: from its start to every zone served, and to the
	// prefix at the router. The router connects once the node's admin
	// API answers (its BGP port is open by then): a router started
	// earlier would add its connect-retry interval to the figure.
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	t0 = time.Now()
	node := start(t, "node", bin, filepath.Join(logDir, "node.log"), "node", "-config", nodeCfg)
	testkit.WaitHTTP(t, "http://"+adminAddr+"/v1/status", 15*time.Second)
	rt := startRouter(t, bgpPort)
	watch := rt.watch(ctx, metricsURL)
	load := waitServed(t, metricsURL, n, 120*time.Second).Sub(t0)
	loadCPU, err := cpu(node)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("new node serves all %d zones %v after its start, having used %v of CPU", n, load.Round(time.Millisecond), loadCPU)
	a := <-watch
	if a.err != nil {
		t.Fatalf("prefix not announced: %v", a.err)
	}
	announce := a.at.Sub(t0)
	if a.zones != n {
		t.Fatalf("prefix announced while the node served %d of %d zones", a.zones, n)
	}
	checkSerials(t, dnsAddr, serials, sample(n, n))

	// The same node restarted from its data directory, the primary
	// stopped: it serves and announces without any transfer.
	if err := node.Stop(t); err != nil {
		t.Fatalf("node: %v", err)
	}
	rt.waitWithdrawn(t, 15*time.Second)
	rt.Close()
	if err := ctl.Stop(t); err != nil {
		t.Fatalf("control: %v", err)
	}
	t0 = time.Now()
	start(t, "node (restarted)", bin, filepath.Join(logDir, "node-restart.log"), "node", "-config", nodeCfg)
	// Its admin API answers once the 10,000 zones are read from disk: a
	// CI run on a loaded machine took more than 15 s.
	testkit.WaitHTTP(t, "http://"+adminAddr+"/v1/status", 60*time.Second)
	rt = startRouter(t, bgpPort)
	watch = rt.watch(ctx, metricsURL)
	restartServe := waitServed(t, metricsURL, n, 120*time.Second).Sub(t0)
	a = <-watch
	if a.err != nil {
		t.Fatalf("prefix not announced after the restart: %v", a.err)
	}
	if a.zones != n {
		t.Fatalf("prefix announced after the restart while the node served %d of %d zones", a.zones, n)
	}
	restartAnnounce := a.at.Sub(t0)
	checkSerials(t, dnsAddr, serials, sample(n, 500))

	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	t.Logf("catalog: zones=%d create=%s load=%s (node cpu %s) announce=%s restart-serve=%s restart-announce=%s",
		n, ms(create), ms(load), ms(loadCPU), ms(announce), ms(restartServe), ms(restartAnnounce))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
