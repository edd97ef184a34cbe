package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// bench runs the measurements of one invocation.
type bench struct {
	o       *options
	zone    *benchkit.Zone
	changes []change
	work    string
	logger  *slog.Logger
}

// subject is a server under test, loaded with the zone, as the change loop
// sees it.
type subject interface {
	// server is the process, for its memory and whether it still runs.
	server() *benchkit.Server
	// apply makes one change the way an operator would, and returns when
	// the operator's command or request has.
	apply(ctx context.Context, c change) error
}

// loadResult is how the zone got into a server.
type loadResult struct {
	// Ready is from process start until the server took requests
	// (anycastd: its API answered; Knot: not measured apart from Total).
	Ready time.Duration `json:"ready_ns,omitempty"`
	// Import is the API's zone import, request sent to response read
	// (anycastd only).
	Import time.Duration `json:"import_ns,omitempty"`
	// Total is until the server answered for a name at the end of the
	// zone: from the import request for anycastd, from process start for
	// Knot.
	Total time.Duration `json:"total_ns"`
	// Busy is how long the server went on working (over idleShare of a
	// core) after it answered: anycastd's node writes its copy of the
	// zone after the transfer. The changes start after it (-wait-idle).
	Busy time.Duration `json:"busy_after_ns,omitempty"`
}

// changeResult is one measured change.
type changeResult struct {
	change
	// API is the request (anycastd) or the knotc calls (Knot), from sent
	// to answered.
	API time.Duration `json:"api_ns"`
	// Answer is from the same start until the first DNS answer holding the
	// new address; the answer timeout when NotAnswered.
	Answer      time.Duration `json:"answer_ns"`
	NotAnswered bool          `json:"not_answered,omitempty"`
	// RSS is the server's resident memory once the change was answered.
	RSS uint64 `json:"rss_kib"`
}

// measure loads the zone into server name, makes the changes and reads its
// memory. Failures end up in the result's Error.
func (b *bench) measure(ctx context.Context, name string) (res serverResult) {
	res.Server = name
	defer res.finish(b.o)
	fail := func(err error) serverResult {
		res.Error = err.Error()
		b.logger.Error("server failed", "server", name, "err", err)
		return res
	}
	dir := filepath.Join(b.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(fmt.Errorf("server directory: %w", err))
	}
	var (
		sub subject
		err error
	)
	switch name {
	case "anycastd":
		sub, res.Load, err = b.loadAnycastd(ctx, dir)
	case "knot":
		sub, res.Load, err = b.loadKnot(ctx, dir)
	default:
		err = fmt.Errorf("unknown server %q", name)
	}
	if sub != nil {
		res.PID = sub.server().PID()
		defer func() {
			if err := sub.server().Stop(10 * time.Second); err != nil {
				b.logger.Warn("stop", "server", name, "err", err)
			}
		}()
	}
	if err != nil {
		return fail(err)
	}
	s := sub.server()
	if b.o.WaitIdle {
		busy, idle := b.waitIdle(ctx, s)
		res.Load.Busy = busy
		if !idle && ctx.Err() == nil {
			b.logger.Warn("still busy; changing anyway", "server", name, "after", busy.Round(time.Millisecond))
		}
	}
	b.sleep(ctx, b.o.Settle)
	res.RSSAfterLoad, _ = treeMem(s)
	b.logger.Info("loaded", "server", name, "took", res.Load.Total.Round(time.Millisecond), "rss", mib(res.RSSAfterLoad))

	for k, c := range b.changes {
		if ctx.Err() != nil {
			return fail(fmt.Errorf("interrupted: %w", ctx.Err()))
		}
		cr, err := b.change(ctx, sub, c)
		if err != nil {
			return fail(fmt.Errorf("change %d of %d (%s A %s): %w", k+1, len(b.changes), c.Name, c.New, err))
		}
		if s.Exited() {
			return fail(fmt.Errorf("%s exited during the changes: %w\n%s", name, s.ExitErr(), s.LogTail()))
		}
		cr.RSS, _ = treeMem(s)
		res.Changes = append(res.Changes, cr)
		answer := cr.Answer.Round(10 * time.Microsecond).String()
		if cr.NotAnswered {
			answer = "not answered in " + b.o.AnswerTimeout.String()
		}
		b.logger.Info("change", "server", name, "n", k+1, "of", len(b.changes), "name", c.Name, "new", c.New,
			"api", cr.API.Round(10*time.Microsecond), "answer", answer, "rss", mib(cr.RSS))
	}
	b.sleep(ctx, b.o.Settle)
	res.RSSAfterChanges, res.HWM = treeMem(s)
	if s.Exited() {
		return fail(fmt.Errorf("%s exited: %w\n%s", name, s.ExitErr(), s.LogTail()))
	}
	b.logger.Info("changes done", "server", name, "rss_after_load", mib(res.RSSAfterLoad),
		"rss_after_changes", mib(res.RSSAfterChanges), "vmhwm", mib(res.HWM))
	if b.o.Idle > 0 {
		b.sleep(ctx, b.o.Idle)
		if ctx.Err() != nil {
			return fail(fmt.Errorf("interrupted: %w", ctx.Err()))
		}
		res.RSSIdle, _ = treeMem(s)
		b.logger.Info("idle", "server", name, "after", b.o.Idle, "rss", mib(res.RSSIdle))
	}
	return res
}

// change makes c on sub and measures it: the poll for the new address
// starts with the request, so an answer that comes before the request
// returns (Knot applies a commit before knotc exits) is timed too. The
// request and the answer must both come within the answer timeout.
func (b *bench) change(ctx context.Context, sub subject, c change) (changeResult, error) {
	qname := c.Name + "." + b.zone.Origin
	pctx, cancel := context.WithTimeout(ctx, b.o.AnswerTimeout)
	defer cancel()
	type polled struct {
		at  time.Time
		err error
	}
	done := make(chan polled, 1)
	sent := time.Now()
	go func() {
		at, err := awaitAnswer(pctx, sub.server().Addr, qname, c.New, b.o.Poll)
		done <- polled{at, err}
	}()
	err := sub.apply(pctx, c)
	cr := changeResult{change: c, API: time.Since(sent)}
	if err != nil {
		cancel()
		<-done
		return cr, err
	}
	p := <-done
	switch {
	case p.err == nil:
		cr.Answer = p.at.Sub(sent)
	case errors.Is(p.err, errNotAnswered) && ctx.Err() == nil:
		cr.Answer, cr.NotAnswered = b.o.AnswerTimeout, true
	default:
		return cr, p.err
	}
	return cr, nil
}

// waitLoaded waits until s answers for the last host of the zone with its
// address, logging progress every few seconds, and returns when.
func (b *bench) waitLoaded(ctx context.Context, s *benchkit.Server, since time.Time) (time.Time, error) {
	l := b.zone.Layout
	probe := l.Hosts - 1
	qname, want := l.HostName(probe)+"."+b.zone.Origin, benchkit.HostA(probe, 0)
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(ctx)
	wg.Go(func() { b.progress(pctx, s, since, "waiting for the zone to be answered") })
	defer wg.Wait()
	defer stop()
	lctx, cancel := context.WithTimeout(ctx, b.o.LoadTimeout-time.Since(since))
	defer cancel()
	return benchkit.WaitAnswer(lctx, s, qname, benchkit.TypeA, func(m *benchkit.Message) bool {
		return m.RCode == benchkit.RCodeNoError && m.AA && slices.ContainsFunc(m.Answer, func(r benchkit.RR) bool {
			a, ok := netip.AddrFromSlice(r.RData)
			return r.Type == benchkit.TypeA && r.Name == qname && ok && a == want
		})
	})
}

// progress logs every 5 s how long it has been since since and the memory
// of s, until ctx ends.
func (b *bench) progress(ctx context.Context, s *benchkit.Server, since time.Time, what string, attrs ...any) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rss, _ := treeMem(s)
			args := append([]any{"server", s.Name, "elapsed", time.Since(since).Round(time.Second), "rss", mib(rss)}, attrs...)
			b.logger.Info(what, args...)
		}
	}
}

// idleShare is the CPU share (of one core, over idleWindow) under which a
// server counts as idle, for idleWindows windows in a row.
const (
	idleShare   = 0.10
	idleWindow  = time.Second
	idleWindows = 2
	idleMax     = 5 * time.Minute
)

// waitIdle waits until s has used less than idleShare of a core over each
// of idleWindows windows of idleWindow in a row, at most idleMax, and
// returns how long that took and whether it became idle.
func (b *bench) waitIdle(ctx context.Context, s *benchkit.Server) (time.Duration, bool) {
	start := time.Now()
	prev := treeTicks(s)
	quiet := 0
	for time.Since(start) < idleMax && ctx.Err() == nil {
		b.sleep(ctx, idleWindow)
		cur := treeTicks(s)
		quiet++
		if float64(cur-prev)/userHZ >= idleShare*idleWindow.Seconds() {
			quiet = 0
		}
		if quiet >= idleWindows {
			return time.Since(start), true
		}
		prev = cur
	}
	return time.Since(start), false
}

// userHZ is the clock tick of /proc/PID/stat (USER_HZ, 100 on Linux).
const userHZ = 100

// treeTicks is the CPU time (utime+stime, in clock ticks) of the server's
// processes.
func treeTicks(s *benchkit.Server) uint64 {
	var t uint64
	for _, pid := range s.Tree() {
		if st, err := benchkit.ReadStat(pid); err == nil {
			t += st.Ticks
		}
	}
	return t
}

func (b *bench) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// treeMem returns the largest resident set (VmRSS) and the largest peak
// (VmHWM) among the server's processes, in KiB.
func treeMem(s *benchkit.Server) (rss, hwm uint64) {
	for _, pid := range s.Tree() {
		if m, err := benchkit.ReadMem(pid, false); err == nil {
			rss, hwm = max(rss, m.RSS), max(hwm, m.HWM)
		}
	}
	return rss, hwm
}

func mib(kib uint64) string { return fmt.Sprintf("%.1fMiB", float64(kib)/1024) }
