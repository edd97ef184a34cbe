// Package apiclient is the typed client of the control plane's REST API
// (package api). It does not import the store, so programs that use it stay
// free of the database driver.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
)

// maxResponse bounds what the client reads in one answer (exports of large
// zones included).
const maxResponse = 1 << 30

// Errors matched with errors.Is against an *Error by its status code.
var (
	ErrUnauthorized = errors.New("unauthorized")        // 401
	ErrNotFound     = errors.New("not found")           // 404
	ErrExists       = errors.New("already exists")      // 409
	ErrConflict     = errors.New("conflict")            // 409 too: the change cannot be made to the zone as it is (a signed zone)
	ErrInvalid      = errors.New("invalid")             // 400, 413, 415
	ErrPrecondition = errors.New("precondition failed") // 412
)

// Error is an error answer of the API.
type Error struct {
	Method     string
	URL        string // the request's, without the query
	StatusCode int
	Message    string // the server's {"error": ...}, or the start of the body
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("%s %s: %s (http %d)", e.Method, e.URL, msg, e.StatusCode)
}

// Is lets errors.Is match the package's errors by status code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrExists, ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrInvalid:
		switch e.StatusCode {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			return true
		}
	case ErrPrecondition:
		return e.StatusCode == http.StatusPreconditionFailed
	}
	return false
}

// Client talks to one control plane.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client of the API at baseURL (http or https, for example
// "http://127.0.0.1:8080"; a bare host:port means http) that sends token. A
// nil hc is a client with a one-minute timeout.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	s := baseURL
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("API URL %q: %w", baseURL, err)
	}
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Port() == "" && strings.HasSuffix(u.Host, ":") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("API URL %q: want http://HOST:PORT or https://HOST:PORT", baseURL)
	}
	if token == "" {
		return nil, errors.New("no API token")
	}
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// request is one call.
type request struct {
	method, path string
	query        url.Values
	header       map[string]string
	contentType  string
	body         io.Reader
}

// do runs a request and returns the answer's headers and body for a 2xx
// status, an *Error otherwise.
func (c *Client) do(ctx context.Context, r request) (http.Header, []byte, error) {
	// r.path is escaped already (names may hold "/", as in RFC 2317
	// reverse zones).
	u := *c.base
	u.RawPath = strings.TrimRight(c.base.EscapedPath(), "/") + r.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	u.Path = p
	if r.query != nil {
		u.RawQuery = r.query.Encode()
	}
	where := u.Scheme + "://" + u.Host + u.RawPath
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), r.body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", r.method, where, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", api.MediaJSON)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The url.Error repeats method and URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("%s %s: %w", r.method, where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read the answer: %w", r.method, where, err)
	}
	if len(body) > maxResponse {
		return nil, nil, fmt.Errorf("%s %s: answer larger than %d bytes", r.method, where, maxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, &Error{Method: r.method, URL: where, StatusCode: resp.StatusCode, Message: errorMessage(body)}
	}
	return resp.Header, body, nil
}

// errorMessage extracts the message of an error answer.
func errorMessage(body []byte) string {
	var e api.Error
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// doJSON runs a request with an optional JSON body and decodes the answer
// into out when it is not nil.
func (c *Client) doJSON(ctx context.Context, r request, in, out any) (http.Header, error) {
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		r.body, r.contentType = bytes.NewReader(b), api.MediaJSON
	}
	h, body, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode the answer: %w", r.method, r.path, err)
		}
	}
	return h, nil
}

// ListZones returns every zone.
func (c *Client) ListZones(ctx context.Context) ([]api.ZoneInfo, error) {
	var l api.ZoneList
	_, err := c.doJSON(ctx, request{method: http.MethodGet, path: api.PathZones}, nil, &l)
	return l.Zones, err
}

// CreateZone creates a zone from records in zone-file form.
func (c *Client) CreateZone(ctx context.Context, z api.CreateZone) (api.ZoneInfo, error) {
	var info api.ZoneInfo
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: api.PathZones}, z, &info)
	return info, err
}

// CreateOptions are the options of CreateZoneText.
type CreateOptions struct {
	SerialPolicy string // increment or date; "" is the server's default
	AllowTLD     bool   // allow the root zone or a top-level domain
}

// ImportOptions are the options of ImportZone.
type ImportOptions struct {
	AllowTLD bool // allow the import to create the root zone or a top-level domain
}

// CreateZoneText creates a zone from RFC 1035 text.
func (c *Client) CreateZoneText(ctx context.Context, name string, text io.Reader, opts CreateOptions) (api.ZoneInfo, error) {
	q := url.Values{"name": {name}}
	if opts.SerialPolicy != "" {
		q.Set("serial_policy", opts.SerialPolicy)
	}
	if opts.AllowTLD {
		q.Set("allow_tld", "true")
	}
	var info api.ZoneInfo
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: api.PathZones, query: q, contentType: api.MediaZoneFile, body: text}, nil, &info)
	return info, err
}

// Zone returns a zone's description and every RRset.
func (c *Client) Zone(ctx context.Context, name string) (api.Zone, error) {
	var z api.Zone
	_, err := c.doJSON(ctx, request{method: http.MethodGet, path: api.ZonePath(name)}, nil, &z)
	return z, err
}

// DeleteZone deletes a zone.
func (c *Client) DeleteZone(ctx context.Context, name string) error {
	_, _, err := c.do(ctx, request{method: http.MethodDelete, path: api.ZonePath(name)})
	return err
}

// ImportZone replaces a zone's content with RFC 1035 text, creating the
// zone if it does not exist.
func (c *Client) ImportZone(ctx context.Context, name string, text io.Reader, opts ImportOptions) (api.ZoneInfo, error) {
	var q url.Values
	if opts.AllowTLD {
		q = url.Values{"allow_tld": {"true"}}
	}
	var info api.ZoneInfo
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: api.ZoneFilePath(name), query: q, contentType: api.MediaZoneFile, body: text}, nil, &info)
	return info, err
}

// ExportZone writes a zone as RFC 1035 text to w.
func (c *Client) ExportZone(ctx context.Context, name string, w io.Writer) error {
	_, body, err := c.do(ctx, request{method: http.MethodGet, path: api.ZoneFilePath(name)})
	if err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

// RRsets returns a zone's RRsets, only those at name when it is not empty.
func (c *Client) RRsets(ctx context.Context, zone, name string) ([]api.RRset, error) {
	var q url.Values
	if name != "" {
		q = url.Values{"name": {name}}
	}
	var l api.RRsetList
	_, err := c.doJSON(ctx, request{method: http.MethodGet, path: api.RRsetsPath(zone), query: q}, nil, &l)
	return l.RRsets, err
}

// RRset returns one RRset and its ETag, for SetRRset's ifMatch.
func (c *Client) RRset(ctx context.Context, zone, name, typ string) (api.RRset, string, error) {
	var set api.RRset
	h, err := c.doJSON(ctx, request{method: http.MethodGet, path: api.RRsetPath(zone, name, typ)}, nil, &set)
	if err != nil {
		return api.RRset{}, "", err
	}
	return set, h.Get("ETag"), nil
}

// SetRRset replaces an RRset. With ifMatch (an ETag from RRset, or "*" for
// any existing RRset) the write happens only if the RRset is still that;
// otherwise the error matches ErrPrecondition.
func (c *Client) SetRRset(ctx context.Context, zone, name, typ string, set api.RRset, ifMatch string) (api.WriteResult, error) {
	var res api.WriteResult
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: api.RRsetPath(zone, name, typ), header: condition(ifMatch)}, set, &res)
	return res, err
}

// PutRRset replaces an RRset like SetRRset, with the TTL optional: without
// one, an existing RRset keeps its TTL and a new one gets the TTL of the
// zone's SOA.
func (c *Client) PutRRset(ctx context.Context, zone, name, typ string, set api.PutRRset, ifMatch string) (api.WriteResult, error) {
	var res api.WriteResult
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: api.RRsetPath(zone, name, typ), header: condition(ifMatch)}, set, &res)
	return res, err
}

// DeleteRRset deletes an RRset, with ifMatch as in SetRRset.
func (c *Client) DeleteRRset(ctx context.Context, zone, name, typ, ifMatch string) (api.WriteResult, error) {
	var res api.WriteResult
	_, err := c.doJSON(ctx, request{method: http.MethodDelete, path: api.RRsetPath(zone, name, typ), header: condition(ifMatch)}, nil, &res)
	return res, err
}

func condition(ifMatch string) map[string]string {
	if ifMatch == "" {
		return nil
	}
	return map[string]string{"If-Match": ifMatch}
}
