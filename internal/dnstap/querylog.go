package dnstap

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// logOutput is the query log's worker: each record becomes one JSON line
// (log/slog's JSON handler) in a file that is started afresh past its
// size bound, the full one kept as FILE.1.
type logOutput struct {
	path     string
	maxSize  int64
	identity string
	q        *Queue
	m        *outputMetrics
	log      *slog.Logger
	backoff  func(attempt int) time.Duration // nil: backoffDelay
	reopen   atomic.Bool                     // set by a reload: reopen the file (logrotate)

	f    *os.File
	bw   *bufio.Writer
	size int64 // bytes in the current file
	h    slog.Handler
}

func newLogOutput(path string, maxSize int64, identity string, q *Queue, m *outputMetrics, logger *slog.Logger) *logOutput {
	return &logOutput{path: path, maxSize: maxSize, identity: identity, q: q, m: m,
		log: logger.With("output", "query_log", "file", path)}
}

// Write counts what the handler writes into the file's buffer.
func (o *logOutput) Write(p []byte) (int, error) {
	n, err := o.bw.Write(p)
	o.size += int64(n)
	return n, err
}

// open opens (or creates) the file for appending.
func (o *logOutput) open() error {
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640) //nolint:gosec // readable by the log group, as the node's other logs
	if err != nil {
		return fmt.Errorf("open query log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat query log: %w", err)
	}
	o.f, o.size = f, st.Size()
	o.m.connected.Set(1)
	if o.bw == nil {
		o.bw = bufio.NewWriterSize(f, 64<<10)
	} else {
		o.bw.Reset(f)
	}
	o.h = slog.NewJSONHandler(o, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		// One line is one query: neither a level nor a message says more.
		if len(groups) == 0 && (a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{}
		}
		return a
	}})
	return nil
}

// close flushes and closes the file.
func (o *logOutput) close() error {
	if o.f == nil {
		return nil
	}
	err := o.bw.Flush()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	o.f = nil
	o.m.connected.Set(0)
	if err != nil {
		return fmt.Errorf("close query log: %w", err)
	}
	return nil
}

// rotate moves the full file to FILE.1 and opens a new one.
func (o *logOutput) rotate() error {
	if err := o.close(); err != nil {
		return err
	}
	if err := os.Rename(o.path, o.path+".1"); err != nil {
		return fmt.Errorf("rotate query log: %w", err)
	}
	return o.open()
}

// run writes the queued records until ctx ends, then what is still queued.
// A file that cannot be opened is tried again with backoff; meanwhile the
// queue fills and the queries are dropped (counted).
func (o *logOutput) run(ctx context.Context) {
	delay := o.backoff
	if delay == nil {
		delay = backoffDelay
	}
	failures := 0
	poll := time.NewTimer(pollInterval)
	defer poll.Stop()
	defer func() {
		if err := o.close(); err != nil {
			o.log.Error("query log", "err", err)
		}
	}()
	for {
		if o.f == nil {
			err := o.close()
			if err == nil {
				err = o.open()
			}
			if err != nil {
				failures++
				d := delay(failures)
				if failures == 1 {
					o.log.Error("query log: cannot write the file, retrying", "err", err, "retry_in", d.Round(time.Millisecond))
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
				continue
			}
			failures = 0
		}
		r := o.q.next()
		if r == nil {
			if err := o.bw.Flush(); err != nil {
				o.log.Error("query log: write", "err", err)
				_ = o.close()
				continue
			}
			if r = o.q.wait(ctx, poll); r == nil {
				for r := o.q.next(); r != nil; r = o.q.next() {
					o.write(ctx, r)
				}
				return
			}
		}
		o.write(ctx, r)
	}
}

// write logs r, rotating the file first when it is past its bound.
func (o *logOutput) write(ctx context.Context, r *record) {
	defer o.q.put(r)
	if o.reopen.Swap(false) {
		// A reload (after logrotate moved the file, say): go on at the
		// configured path.
		err := o.close()
		if err == nil {
			err = o.open()
		}
		if err != nil {
			o.log.Error("query log: reopen", "err", err)
			o.m.writeErrors.Inc()
			return
		}
	}
	if o.f == nil {
		o.m.writeErrors.Inc() // the file could not be (re)opened
		return
	}
	if o.size >= o.maxSize {
		if err := o.rotate(); err != nil {
			o.log.Error("query log", "err", err)
			o.m.writeErrors.Inc()
			return
		}
	}
	if err := o.h.Handle(ctx, queryRecord(r, o.identity)); err != nil {
		o.m.writeErrors.Inc()
		return
	}
	o.m.written.Inc()
}

// queryRecord is the log record of one query: who asked what, over
// which transport, and what the answer was.
func queryRecord(r *record, identity string) slog.Record {
	t := r.received
	if t.IsZero() {
		t = r.answered
	}
	rec := slog.NewRecord(t, slog.LevelInfo, "", 0)
	rec.AddAttrs(
		slog.String("node", identity),
		slog.String("client", r.client.String()),
		slog.String("server", r.server.String()),
		slog.String("transport", r.transport.String()),
	)
	q, resp := r.query(), r.response()
	if len(q) >= 12 {
		rec.AddAttrs(slog.Int("id", int(binary.BigEndian.Uint16(q))))
	}
	if len(q) > 12 && binary.BigEndian.Uint16(q[4:]) > 0 {
		if name, off, err := dns.UnpackDomainName(q, 12); err == nil && off+4 <= len(q) {
			rec.AddAttrs(
				slog.String("qname", name),
				slog.String("qtype", typeString(binary.BigEndian.Uint16(q[off:]))),
				slog.String("qclass", classString(binary.BigEndian.Uint16(q[off+2:]))),
			)
		}
	}
	if len(resp) >= 12 {
		flags := binary.BigEndian.Uint16(resp[2:])
		rec.AddAttrs(
			slog.String("rcode", rcodeString(int(flags&0xF))),
			slog.String("flags", flagString(flags)),
			slog.Int("answers", int(binary.BigEndian.Uint16(resp[6:]))),
		)
	}
	rec.AddAttrs(
		slog.Int("size", len(resp)),
		slog.Int64("duration_us", r.answered.Sub(t).Microseconds()),
	)
	return rec
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

func classString(c uint16) string {
	if s, ok := dns.ClassToString[c]; ok {
		return s
	}
	return fmt.Sprintf("CLASS%d", c)
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// flagString is the header flags of a response as dig shows them.
func flagString(f uint16) string {
	var b strings.Builder
	for _, x := range []struct {
		bit  uint16
		name string
	}{{1 << 15, "qr"}, {1 << 10, "aa"}, {1 << 9, "tc"}, {1 << 8, "rd"}, {1 << 7, "ra"}, {1 << 5, "ad"}, {1 << 4, "cd"}} {
		if f&x.bit != 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(x.name)
		}
	}
	return b.String()
}
