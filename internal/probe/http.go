package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"time"
)

// maxBody is the most of a body an HTTP probe reads.
const maxBody = 1 << 20

// HTTP is an HTTP(S) probe: a GET of URL that passes when the status is
// Status (default 200) and, when Body is set, the first MiB of the body
// matches it. An https URL's certificate is verified against TLS's
// RootCAs (the system's when TLS or RootCAs is nil) and the URL's host
// name, or TLS.ServerName; verification cannot be turned off here.
// Redirects are not followed: a 3xx is the status seen.
type HTTP struct {
	URL    string
	Status int            // 0 = 200
	Body   *regexp.Regexp // nil = any body
	TLS    *tls.Config    // nil = the defaults
}

// Probe makes one request on a connection of its own, closed afterwards.
func (p HTTP) Probe(ctx context.Context) Result {
	start := time.Now()
	r := Result{Start: start}
	r.Status, r.Err = p.do(ctx)
	r.RTT = time.Since(start)
	return r
}

func (p HTTP) do(ctx context.Context) (int, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return 0, fmt.Errorf("probe: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return 0, fmt.Errorf("probe: %q is not an http or https URL", p.URL)
	}
	tr := &http.Transport{
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: 0, // the context bounds it
		TLSClientConfig:     p.tlsConfig(),
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return 0, fmt.Errorf("probe: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, ioErr(ctx, "get "+p.URL, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, ioErr(ctx, "get "+p.URL+": read body", err)
	}
	want := p.Status
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return resp.StatusCode, fmt.Errorf("get %s: status %d, want %d", p.URL, resp.StatusCode, want)
	}
	if p.Body != nil && !p.Body.Match(body) {
		return resp.StatusCode, fmt.Errorf("get %s: the body does not match %q", p.URL, p.Body)
	}
	return resp.StatusCode, nil
}

func (p HTTP) tlsConfig() *tls.Config {
	if p.TLS == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c := p.TLS.Clone()
	c.InsecureSkipVerify = false
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}
