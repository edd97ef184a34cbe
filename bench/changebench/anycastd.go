package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// anycastd is `anycastd standalone` (control plane and node in one
// process) driven through its REST API (docs/api.md), the way curl or
// anycastctl would.
type anycastd struct {
	s      *benchkit.Server
	api    string // http://127.0.0.1:PORT
	token  string
	origin string
	hc     *http.Client
}

func (a *anycastd) server() *benchkit.Server { return a.s }

// envToken is the environment variable anycastd standalone reads its API
// token from (not -token: that one is visible in ps).
const envToken = "ANYCASTD_API_TOKEN" //nolint:gosec // the name of a variable, not a credential

// loopbackPorts returns n distinct free ports on 127.0.0.1.
func loopbackPorts(n int) ([]netip.AddrPort, error) {
	lo := netip.MustParseAddr("127.0.0.1")
	var ports []netip.AddrPort
	for tries := 0; len(ports) < n; tries++ {
		if tries > 20*n {
			return nil, errors.New("find free ports: the same ports keep coming back")
		}
		p, err := benchkit.FreePort(lo)
		if err != nil {
			return nil, err
		}
		if !containsPort(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

func containsPort(ports []netip.AddrPort, p netip.AddrPort) bool {
	for _, q := range ports {
		if q.Port() == p.Port() {
			return true
		}
	}
	return false
}

// standaloneLaunch is the command line of anycastd standalone with every
// listener on the given loopback ports, its data in dir/data, no metrics
// listener, and an API that takes bodies up to maxBody MiB.
func standaloneLaunch(bin, dir, token string, maxBody int64, dns, api, xfr, admin netip.AddrPort) benchkit.Launch {
	return benchkit.Launch{
		Name: "anycastd",
		Argv: []string{bin, "standalone",
			"-data", filepath.Join(dir, "data"),
			"-dns", dns.String(), "-api", api.String(), "-xfr", xfr.String(), "-admin", admin.String(),
			"-api-max-body", fmt.Sprintf("%dMiB", maxBody),
			"-metrics=", "-nsid", "bench-anycastd", "-log-level", "warn"},
		Env: []string{envToken + "=" + token},
	}
}

// The API's body limit (-api-max-body): its default, and its largest.
const (
	defaultMaxBodyMiB = 32
	maxMaxBodyMiB     = 1 << 10
)

// maxBodyMiB is the API body limit, in MiB, that takes a zone file of
// size bytes in one request: the API's default, or the file's size rounded
// up to the next whole MiB past it, at most 1 GiB.
func maxBodyMiB(size int64) (int64, error) {
	n := max(size>>20+1, defaultMaxBodyMiB)
	if n > maxMaxBodyMiB {
		return 0, fmt.Errorf("the zone file is %.1f MB; anycastd standalone's API takes bodies of at most 1 GiB", float64(size)/1e6)
	}
	return n, nil
}

// startAnycastd starts anycastd standalone in dir, its API taking a zone
// file of zoneBytes in one request, and waits for its API.
func startAnycastd(ctx context.Context, bin, dir, origin string, zoneBytes int64) (*anycastd, error) {
	maxBody, err := maxBodyMiB(zoneBytes)
	if err != nil {
		return nil, err
	}
	ports, err := loopbackPorts(4)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	l := standaloneLaunch(bin, dir, token, maxBody, ports[0], ports[1], ports[2], ports[3])
	s, err := benchkit.Start(l, -1, 0, dir, ports[0])
	if err != nil {
		return nil, err
	}
	a := &anycastd{s: s, api: "http://" + ports[1].String(), token: token, origin: origin,
		hc: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}}}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if s.Exited() {
			return a, fmt.Errorf("anycastd exited before its API answered: %w\n%s", s.ExitErr(), s.LogTail())
		}
		if _, err := a.do(rctx, http.MethodGet, "/v1/zones", "", nil, -1); err == nil {
			return a, nil
		} else if rctx.Err() != nil {
			return a, fmt.Errorf("anycastd API not ready: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiError is an answer of the API other than 200.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// do sends one request with the token and returns the body of a 200
// answer, or an *apiError with the API's message. size is the body's
// length, -1 when unknown or without a body.
func (a *anycastd) do(ctx context.Context, method, path, contentType string, body io.Reader, size int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.api+path, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return nil, &apiError{Status: resp.StatusCode, Message: e.Error}
	}
	return b, nil
}

// countingReader counts what has been read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// importZone replaces the zone's content with the zone file through the
// API (PUT /v1/zones/ZONE/zonefile, creating the zone), logging progress,
// and returns how long the request took.
func (a *anycastd) importZone(ctx context.Context, b *bench) (time.Duration, error) {
	f, err := os.Open(b.zone.ZonePath)
	if err != nil {
		return 0, fmt.Errorf("zone file: %w", err)
	}
	defer f.Close()
	body := &countingReader{r: f}
	start := time.Now()
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-tick.C:
				rss, _ := treeMem(a.s)
				sent := body.n.Load()
				what := "importing: sending the zone file"
				if sent == b.zone.Bytes {
					what = "importing: zone file sent, waiting for the API's answer"
				}
				b.logger.Info(what, "server", "anycastd", "elapsed", time.Since(start).Round(time.Second),
					"sent", fmt.Sprintf("%.1f of %.1f MB", float64(sent)/1e6, float64(b.zone.Bytes)/1e6), "rss", mib(rss))
			}
		}
	})
	ictx, cancel := context.WithTimeout(ctx, b.o.LoadTimeout)
	defer cancel()
	_, err = a.do(ictx, http.MethodPut, "/v1/zones/"+url.PathEscape(a.origin)+"/zonefile", "text/dns", body, b.zone.Bytes)
	took := time.Since(start)
	stop()
	wg.Wait()
	if err != nil {
		if ae, ok := errors.AsType[*apiError](err); ok && ae.Status == http.StatusRequestEntityTooLarge {
			return took, fmt.Errorf("import through the API: %w (the zone file is %.1f MB; anycastd standalone takes bodies up to its -api-max-body)",
				err, float64(b.zone.Bytes)/1e6)
		}
		if s := a.s; s.Exited() {
			return took, fmt.Errorf("import through the API: %w; anycastd exited: %w\n%s", err, s.ExitErr(), s.LogTail())
		}
		return took, fmt.Errorf("import through the API after %v: %w", took.Round(time.Millisecond), err)
	}
	return took, nil
}

// apply replaces the A RRset of the change's name with the new address
// (PUT /v1/zones/ZONE/rrsets/NAME/A).
func (a *anycastd) apply(ctx context.Context, c change) error {
	body := fmt.Sprintf(`{"ttl": 3600, "records": [%q]}`, c.New.String())
	path := "/v1/zones/" + url.PathEscape(a.origin) + "/rrsets/" + url.PathEscape(c.Name) + "/A"
	_, err := a.do(ctx, http.MethodPut, path, "application/json", strings.NewReader(body), int64(len(body)))
	if err != nil {
		return fmt.Errorf("PUT %s: %w", path, err)
	}
	return nil
}

// loadAnycastd starts anycastd standalone and imports the zone through
// the API; the load ends when the node answers for the zone's last host.
func (b *bench) loadAnycastd(ctx context.Context, dir string) (subject, loadResult, error) {
	var res loadResult
	b.logger.Info("starting", "server", "anycastd", "bin", b.o.AnycastdBin)
	a, err := startAnycastd(ctx, b.o.AnycastdBin, dir, b.zone.Origin, b.zone.Bytes)
	if a == nil {
		return nil, res, err
	}
	res.Ready = time.Since(a.s.Started)
	if err != nil {
		return a, res, err
	}
	b.logger.Info("API ready", "server", "anycastd", "pid", a.s.PID(), "after", res.Ready.Round(time.Millisecond),
		"importing", fmt.Sprintf("%.1f MB", float64(b.zone.Bytes)/1e6))
	start := time.Now()
	if res.Import, err = a.importZone(ctx, b); err != nil {
		return a, res, err
	}
	b.logger.Info("imported through the API", "server", "anycastd", "took", res.Import.Round(time.Millisecond))
	at, err := b.waitLoaded(ctx, a.s, start)
	if err != nil {
		return a, res, fmt.Errorf("node did not answer the imported zone: %w", err)
	}
	res.Total = at.Sub(start)
	return a, res, nil
}
