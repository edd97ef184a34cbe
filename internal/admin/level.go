package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// PathLevel is the operator's pin of the node's PoP level: POST pins,
// DELETE unpins.
const PathLevel = "/v1/level"

// Leveler is a Backend whose PoP level an operator can pin; Handler serves
// POST and DELETE /v1/level only for one.
type Leveler interface {
	// PinLevel pins the node's level until UnpinLevel: it overrides the
	// control plane's level; the node's own health still overrides it.
	PinLevel(ctx context.Context, l level.Level, reason string) error
	// UnpinLevel removes the pin (nothing when there is none): the control
	// plane's level applies again, else normal.
	UnpinLevel(ctx context.Context) error
}

// Sources of the level in force (Level.Source).
const (
	SourceOperator = "operator" // the operator's pin
	SourceControl  = "control"  // the control plane, from the monitors' view
	SourceDefault  = "default"  // neither: normal, plain anycast
	SourceHealth   = "health"   // the node's own health check fails: withdrawn
	SourceDrain    = "drain"    // an operator drain: withdrawn
	SourceShutdown = "shutdown" // the node is stopping: withdrawn
)

// Level is the PoP level a node with BGP announces at, and why. Its JSON
// form (the "level" member of GET /v1/status):
//
//	{
//	  "level": "shed-2",           in force: normal, shed-1..3, withdrawn
//	  "source": "operator",        operator, control, default; or health, drain, shutdown (withdrawn)
//	  "reason": "rack upgrade",
//	  "pin": {"level": "shed-2", "reason": "rack upgrade", "since": "2026-03-14T15:00:00Z"},
//	  "control": {"level": "shed-1", "reason": "...", "since": "...", "valid_until": "2026-03-14T15:12:00Z"}
//	}
//
// pin and control are left out when there is none (control also once its
// validity has passed).
type Level struct {
	Level   level.Level   `json:"level"`
	Source  string        `json:"source"`
	Reason  string        `json:"reason,omitempty"`
	Pin     *LevelSetting `json:"pin,omitempty"`
	Control *LevelSetting `json:"control,omitempty"`
}

// LevelSetting is the level one source asks for.
type LevelSetting struct {
	Level  level.Level `json:"level"`
	Reason string      `json:"reason,omitempty"`
	Since  time.Time   `json:"since,omitzero"`
	Until  time.Time   `json:"valid_until,omitzero"` // zero for a pin: until unpinned
}

// PinRequest is the body of POST /v1/level: {"level": "shed-2", "reason":
// "rack upgrade"}. Other members are refused.
type PinRequest struct {
	Level  level.Level `json:"level"`
	Reason string      `json:"reason,omitempty"`
}

// MaxReasonLen bounds the reason of a pin, in bytes.
const MaxReasonLen = 200

// maxPinBody bounds the body of POST /v1/level.
const maxPinBody = 4096

// CheckReason reports what is wrong with a reason: too long, or not one
// line of printable text.
func CheckReason(s string) error {
	if len(s) > MaxReasonLen {
		return fmt.Errorf("reason is %d bytes, at most %d", len(s), MaxReasonLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("reason is not UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("reason holds the control character %U", r)
		}
	}
	return nil
}

// decodePin reads a POST /v1/level body.
func decodePin(r io.Reader) (PinRequest, error) {
	dec := json.NewDecoder(io.LimitReader(r, maxPinBody+1))
	dec.DisallowUnknownFields()
	var raw struct {
		Level  *string `json:"level"`
		Reason string  `json:"reason"`
	}
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return PinRequest{}, errors.New(`empty body: want {"level": "shed-1", "reason": "..."}`)
		}
		return PinRequest{}, fmt.Errorf("body: %w", err)
	}
	if dec.More() {
		return PinRequest{}, errors.New("body: more than one JSON value")
	}
	if raw.Level == nil {
		return PinRequest{}, errors.New(`body: "level" is required (` + strings.Join(level.Names, ", ") + ")")
	}
	l, err := level.Parse(*raw.Level)
	if err != nil {
		return PinRequest{}, fmt.Errorf("body: level: %w", err)
	}
	if err := CheckReason(raw.Reason); err != nil {
		return PinRequest{}, fmt.Errorf("body: %w", err)
	}
	return PinRequest{Level: l, Reason: raw.Reason}, nil
}

func (h *handler) pin(lv Leveler) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q, want application/json", ct))
			return
		}
		req, err := decodePin(r.Body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		h.action("pin level", func(ctx context.Context) error { return lv.PinLevel(ctx, req.Level, req.Reason) },
			"level", req.Level, "reason", req.Reason)(w, r)
	}
}

func (h *handler) unpin(lv Leveler) func(http.ResponseWriter, *http.Request) {
	return h.action("unpin level", lv.UnpinLevel)
}

// PinLevel pins the node's level and returns the status after it.
func (c *Client) PinLevel(ctx context.Context, l level.Level, reason string) (Status, error) {
	var st Status
	if err := c.call(ctx, "pin level", http.MethodPost, PathLevel, PinRequest{Level: l, Reason: reason}, &st); err != nil {
		return Status{}, err
	}
	return st, nil
}

// UnpinLevel removes the operator's pin and returns the status after it.
func (c *Client) UnpinLevel(ctx context.Context) (Status, error) {
	return c.do(ctx, "unpin level", http.MethodDelete, PathLevel)
}
