package admin

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
)

// maxResponse bounds what the client reads from a node.
const maxResponse = 64 << 20

// Client is a typed client of one node's admin API.
type Client struct {
	base string // scheme://host:port
	hc   *http.Client
}

// NewClient returns a client of the admin API at addr: host:port, or a URL
// with the http or https scheme. A nil hc is a client with a 30s timeout.
func NewClient(addr string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	base := strings.TrimRight(addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	return &Client{base: base, hc: hc}
}

// Error is an error answer of the API.
type Error struct {
	Op         string // status, drain, undrain, load, pin level, unpin level
	URL        string // of the API, without the path
	StatusCode int
	Message    string // the server's {"error": ...}, or the start of the body
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("%s %s: %s (http %d)", e.Op, e.URL, msg, e.StatusCode)
}

// Is makes errors.Is(err, ErrConflict) and errors.Is(err, ErrUnavailable)
// true for the status codes the handler gives them.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	}
	return false
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return c.do(ctx, "status", http.MethodGet, PathStatus)
}

// Drain withdraws the node's routes (it keeps answering) and returns the
// status after it.
func (c *Client) Drain(ctx context.Context) (Status, error) {
	return c.do(ctx, "drain", http.MethodPost, PathDrain)
}

// Undrain ends a drain and returns the status after it; the node announces
// again while it is healthy.
func (c *Client) Undrain(ctx context.Context) (Status, error) {
	return c.do(ctx, "undrain", http.MethodPost, PathUndrain)
}

func (c *Client) do(ctx context.Context, op, method, path string) (Status, error) {
	var st Status
	if err := c.call(ctx, op, method, path, nil, &st); err != nil {
		return Status{}, err
	}
	return st, nil
}

func (c *Client) get(ctx context.Context, op, path string, v any) error {
	return c.call(ctx, op, http.MethodGet, path, nil, v)
}

// call makes one request, with in as its JSON body unless nil, and
// decodes its JSON answer into v.
func (c *Client) call(ctx context.Context, op, method, path string, in, v any) error {
	var reqBody io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", op, c.base, err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reqBody)
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, c.base, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The url.Error repeats method and URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", op, c.base, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("%s: %s: read response: %w", op, c.base, err)
	}
	if len(body) > maxResponse {
		return fmt.Errorf("%s %s: response larger than %d bytes", op, c.base, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return &Error{Op: op, URL: c.base, StatusCode: resp.StatusCode, Message: errorMessage(body)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", op, c.base, err)
	}
	return nil
}

// errorMessage is the error of an {"error": ...} body, or the body's first
// line when it is something else (a proxy's page, another server).
func errorMessage(body []byte) string {
	var e errorJSON
	if err := json.Unmarshal(body, &e); err == nil && e.Error != "" {
		return e.Error
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return line
}
