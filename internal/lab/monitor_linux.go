package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/role/monitor"
)

// ErrNoMonitors is returned by the monitor operations of a lab built
// without Options.Monitors.
var ErrNoMonitors = errors.New("the lab runs no monitors (anycastlab up -monitors, Options.Monitors)")

// MonitorConfigPath is the configuration file of the monitor at vantage.
func (l *Lab) MonitorConfigPath(vantage string) string {
	return filepath.Join(l.Dir, vantage+".monitor.yaml")
}

// Monitors lists the lab's monitors (none without Options.Monitors).
func (l *Lab) Monitors() []Monitor {
	if !l.opts.Monitors {
		return nil
	}
	return l.plan.monitors()
}

func (l *Lab) monitor(vantage string) (Monitor, error) {
	for _, m := range l.Monitors() {
		if m.Vantage == vantage {
			return m, nil
		}
	}
	if !l.opts.Monitors {
		return Monitor{}, ErrNoMonitors
	}
	return Monitor{}, fmt.Errorf("no monitor at vantage point %q", vantage)
}

// writeMonitorConfigs writes every monitor's configuration and the token
// they report with.
func (l *Lab) writeMonitorConfigs() error {
	if err := os.WriteFile(filepath.Join(l.Dir, monitorToken), []byte(l.ctl.MonitorToken+"\n"), 0o600); err != nil {
		return fmt.Errorf("write monitor token: %w", err)
	}
	for _, m := range l.plan.monitors() {
		b, err := l.plan.renderMonitorConfig(m, l.ctl)
		if err != nil {
			return err
		}
		if err := os.WriteFile(l.MonitorConfigPath(m.Vantage), b, 0o644); err != nil {
			return fmt.Errorf("write monitor config: %w", err)
		}
	}
	return nil
}

// startMonitors starts every monitor and waits until each has probed every
// PoP once.
func (l *Lab) startMonitors(ctx context.Context) (string, error) {
	var names []string
	for _, m := range l.plan.monitors() {
		if _, err := l.StartMonitor(ctx, m.Vantage); err != nil {
			return "", err
		}
		names = append(names, m.Vantage+" in "+m.Node)
	}
	return fmt.Sprintf("%d monitors (%s) probing every PoP every %s, reporting to %s", len(names), strings.Join(names, ", "), MonitorInterval, l.ctl.apiAddr()), nil
}

// StartMonitor starts the monitor at vantage in its namespace, at the lab's
// priority, its log in the lab directory, and waits until its first round
// is done (GET /readyz). It fails if that monitor already runs.
func (l *Lab) StartMonitor(ctx context.Context, vantage string) (*Process, error) {
	m, err := l.monitor(vantage)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	old := l.monitors[vantage]
	l.mu.Unlock()
	if old != nil && old.Running() {
		return nil, fmt.Errorf("monitor %s already runs (pid %d)", vantage, old.PID)
	}
	p, err := l.startIn(m.Node, "anycastd", []string{l.opts.Anycastd, "monitor", "-config", l.MonitorConfigPath(vantage)})
	if p != nil {
		l.mu.Lock()
		l.monitors[vantage] = p
		l.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("monitor %s on %s: %w", vantage, m.Node, err)
	}
	n, _ := l.plan.node(m.Node)
	hc := httpClientIn(n, time.Second)
	url := "http://" + netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), MonitorPort).String() + "/readyz"
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get(url) //nolint:noctx // bounded by the client's timeout
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-p.Done():
			return p, fmt.Errorf("monitor %s exited (log %s): %w", vantage, p.Log, p.Wait())
		default:
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("monitor %s not ready after 10s: %w", vantage, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return p, err
		}
	}
}

// StopMonitor stops the monitor at vantage (SIGTERM) and waits for it.
// Stopping one that does not run does nothing.
func (l *Lab) StopMonitor(vantage string) error {
	if _, err := l.monitor(vantage); err != nil {
		return err
	}
	l.mu.Lock()
	p := l.monitors[vantage]
	l.mu.Unlock()
	if p == nil || !p.Running() {
		return nil
	}
	return p.Stop(3 * time.Second)
}

// MonitorView returns what the monitor at vantage sees (its GET /v1/view).
func (l *Lab) MonitorView(ctx context.Context, vantage string) (monitor.View, error) {
	var v monitor.View
	m, err := l.monitor(vantage)
	if err != nil {
		return v, err
	}
	n, _ := l.plan.node(m.Node)
	url := "http://" + netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), MonitorPort).String() + monitor.PathView
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return v, err
	}
	resp, err := httpClientIn(n, 2*time.Second).Do(req)
	if err != nil {
		return v, fmt.Errorf("monitor %s: view: %w", vantage, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("monitor %s: view: %s", vantage, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("monitor %s: view: %w", vantage, err)
	}
	return v, nil
}
