package xfrout

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

// logRecords is a slog handler keeping "LEVEL message key=value ..." lines
// (groups ignored).
type logRecords struct {
	mu    *sync.Mutex
	lines *[]string
	attrs string // of WithAttrs
}

func newLogRecords() *logRecords { return &logRecords{mu: &sync.Mutex{}, lines: &[]string{}} }

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	for _, a := range as {
		c.attrs += " " + a.String()
	}
	return &c
}

func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message + h.attrs
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	h.mu.Lock()
	*h.lines = append(*h.lines, line)
	h.mu.Unlock()
	return nil
}

func (h *logRecords) find(sub string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, l := range *h.lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// nodeNotifyReceiver answers NOTIFYs on loopback UDP with a node's own
// handler (zonesync.Manager.Notify) for a node that has the key secret and
// no zones yet, as a PoP is when the control plane NOTIFYs a zone the
// catalog has not brought it.
func nodeNotifyReceiver(t *testing.T, secret string) netip.AddrPort {
	t.Helper()
	m, err := zonesync.New(zonesync.Config{
		DataDir:     t.TempDir(),
		Keys:        []tsig.Key{{Name: keyA, Algorithm: "hmac-sha256", Secret: secret}},
		NotifyAllow: []zonesync.NotifyACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Key: keyA}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := m.Notify(buf[:n], from.(*net.UDPAddr).AddrPort()); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); <-done })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestNotifyNotAuthLogged: the first NOTIFY of a new zone reaches a node
// that does not serve the zone yet, which answers NOTAUTH (signed, no TSIG
// error). That is logged as what it is, at debug, not as a rejection that
// reads like a TSIG failure; a NOTAUTH that does carry a TSIG error (the
// node has another secret) is a warning that names it.
func TestNotifyNotAuthLogged(t *testing.T) {
	tests := []struct {
		name      string
		secret    string // the node's secret for keyA
		wantLevel string
		wantMsg   string
		notWanted string
	}{
		{"zone not served yet", secretA, "DEBUG", "the target does not serve the zone yet", "rejected"},
		{"node has another secret", secretB, "WARN", "did not accept our TSIG signature (BADSIG)", "does not serve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := nodeNotifyReceiver(t, tt.secret)
			src := newMemSource()
			src.set(t, makeZone(t, origin, 7, 1))
			cfg := aclConfig()
			cfg.Notify = []NotifyTarget{{Addr: addr, Key: keyA}}
			cfg.NotifyTries, cfg.NotifyTimeout, cfg.NotifyBackoff = 3, 300*time.Millisecond, 20*time.Millisecond
			cfg.Listen = []netip.AddrPort{netip.MustParseAddrPort(loopback + ":0")}
			logs := newLogRecords()
			s, err := New(cfg, src, slog.New(logs))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			defer func() { cancel(); <-done }()
			waitFor(t, "the notify to be answered", func() bool {
				return counter(t, s, "anycastd_xfrout_notifies_total", map[string]string{"result": notifyRejected}) == 1
			})
			var got []string
			for _, l := range logs.find("notify") {
				if strings.Contains(l, "zone="+origin) && (strings.Contains(l, "rejected") || strings.Contains(l, "does not serve")) {
					got = append(got, l)
				}
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.wantLevel+" ") || !strings.Contains(got[0], tt.wantMsg) || strings.Contains(got[0], tt.notWanted) {
				t.Errorf("log %q, want one %s record with %q and without %q", got, tt.wantLevel, tt.wantMsg, tt.notWanted)
			}
			if strings.Contains(strings.Join(got, "\n"), "bad authentication") {
				t.Errorf("log %q still reads like a TSIG failure", got)
			}
		})
	}
}
