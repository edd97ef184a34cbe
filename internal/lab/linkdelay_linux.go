package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Changing a link's delay while the lab runs (the steer-latency scenario):
// only a wired link (one with a delay or loss in the topology) has a wire
// to change; a veth pair has none. A wire in this process changes at once;
// the wire of an `anycastlab wire` process reads the new delay from its
// delay file on SIGUSR1.

// delayFile is the file the wire of link k reads its new delay from.
func (l *Lab) delayFile(k *Link) string { return filepath.Join(l.Dir, "wire-"+k.Name+".delay") }

// routerLink returns the link between two regions' routers ("A", "B") or
// two nodes ("A-router", "B-router"), in either order.
func (l *Lab) routerLink(a, b string) (*Link, error) {
	name := func(s string) string {
		if _, err := l.plan.node(s); err == nil {
			return s
		}
		return nodeName(s, "router")
	}
	na, nb := name(a), name(b)
	for _, k := range l.plan.links {
		if (k.A.Node == na && k.B.Node == nb) || (k.A.Node == nb && k.B.Node == na) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no link between %s and %s in lab %s", na, nb, l.ID)
}

// LinkDelay is the one-way delay of the link between a and b (regions or
// nodes) as the lab last set it.
func (l *Lab) LinkDelay(a, b string) (time.Duration, error) {
	k, err := l.routerLink(a, b)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return k.Spec.Delay, nil
}

// SetLinkDelay changes the one-way delay of the wired link between a and b
// (regions or nodes) to d, in both directions, while the lab runs; the
// plan's path delays (nearest PoPs, the scenarios' expectations) follow.
func (l *Lab) SetLinkDelay(a, b string, d time.Duration) error {
	k, err := l.routerLink(a, b)
	if err != nil {
		return err
	}
	if d < 0 || d > 10*time.Second {
		return fmt.Errorf("link %s: delay %s: want 0 to 10s", k.Name, d)
	}
	if !k.Wired() {
		return fmt.Errorf("link %s is a veth pair (no delay or loss in the topology): it has no wire whose delay could change", k.Name)
	}
	l.mu.Lock()
	var inProcess *Wire
	for _, rw := range l.wires {
		if rw.wire.cfg.Name == k.Name {
			inProcess = rw.wire
		}
	}
	var rec *ProcessRecord
	for i, p := range l.state.Processes {
		if p.Kind == "wire" && p.Name == "wire "+k.Name {
			rec = &l.state.Processes[i]
		}
	}
	l.mu.Unlock()
	switch {
	case inProcess != nil:
		if err := inProcess.SetDelay(d); err != nil {
			return err
		}
	case rec != nil:
		if err := signalWire(*rec, l.delayFile(k), d); err != nil {
			return fmt.Errorf("link %s: %w", k.Name, err)
		}
	default:
		return fmt.Errorf("link %s: no wire runs it", k.Name)
	}
	l.mu.Lock()
	k.Spec.Delay = d
	l.mu.Unlock()
	return nil
}

// signalWire writes d to the wire process's delay file and signals it. A
// wire started without a delay file (an older anycastlab) would die of the
// signal: it is refused.
func signalWire(rec ProcessRecord, file string, d time.Duration) error {
	if !rec.Running() {
		return fmt.Errorf("wire process %d is not running", rec.PID)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(rec.PID) + "/cmdline")
	if err != nil {
		return fmt.Errorf("wire process %d: %w", rec.PID, err)
	}
	if !bytes.Contains(cmdline, []byte("\x00-delay-file\x00"+file+"\x00")) {
		return errors.New("its wire process was started without -delay-file " + file + " (by an older anycastlab): restart the lab")
	}
	if err := os.WriteFile(file, []byte(d.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("write delay: %w", err)
	}
	if err := syscall.Kill(rec.PID, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("signal wire process %d: %w", rec.PID, err)
	}
	return nil
}
