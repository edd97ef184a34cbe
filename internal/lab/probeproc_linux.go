package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// A probe process (`anycastlab stream`) runs the clients' streams in a
// session of its own at the lab's priority, so that what loads the session
// of the program that runs the scenario (a test run, a build) cannot delay
// the clients' clocks. It reports every query as one JSON line on stdout
// the moment it is sent and again when it is answered, with its own clock's
// times; it stops when its stdin closes, after waiting for the answers
// still due.

// streamEvent is one line a probe process writes: query Seq of stream I
// was sent at Sent, or answered at Recv by PoP (or failed with Err).
// Times are Unix nanoseconds.
type streamEvent struct {
	I    int    `json:"i"`
	Seq  int    `json:"q"`
	Sent int64  `json:"s"`
	Recv int64  `json:"r,omitempty"`
	PoP  string `json:"p,omitempty"`
	Err  string `json:"e,omitempty"`
}

func eventOf(i int, a Answer) streamEvent {
	ev := streamEvent{I: i, Seq: a.Seq, Sent: a.Sent.UnixNano(), PoP: a.PoP, Err: a.Err}
	if !a.Recv.IsZero() {
		ev.Recv = a.Recv.UnixNano()
	}
	return ev
}

func (ev streamEvent) answer() Answer {
	a := Answer{Seq: ev.Seq, Sent: time.Unix(0, ev.Sent), PoP: ev.PoP, Err: ev.Err}
	if ev.Recv != 0 {
		a.Recv = time.Unix(0, ev.Recv)
	}
	return a
}

// ServeStreams is the probe process: it runs one stream per spec until
// stop is closed or reaches EOF (its stdin), then stops them, waits for
// the answers due, and returns once every event is written to out.
func ServeStreams(ctx context.Context, specs []StreamSpec, rate int, timeout time.Duration, stop io.Reader, out io.Writer) error {
	events := make(chan streamEvent, 4096)
	var streams []*Stream
	var werr error
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		w := bufio.NewWriter(out)
		enc := json.NewEncoder(w)
		for ev := range events {
			if werr == nil {
				werr = enc.Encode(ev)
			}
			if len(events) == 0 && werr == nil {
				werr = w.Flush()
			}
		}
		if werr == nil {
			werr = w.Flush()
		}
	}()
	var mu sync.Mutex
	closed := false
	emit := func(ev streamEvent) {
		mu.Lock()
		defer mu.Unlock()
		if !closed {
			events <- ev
		}
	}
	var err error
	for i, sp := range specs {
		var s *Stream
		s, err = startLocalStream(sp, rate, timeout, func(a Answer) { emit(eventOf(i, a)) })
		if err != nil {
			break
		}
		streams = append(streams, s)
	}
	if err == nil {
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, stop)
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	stopAll(streams)
	mu.Lock()
	closed = true
	close(events)
	mu.Unlock()
	<-wdone
	return errors.Join(err, werr)
}

// probeProcess is the parent's side of a probe process.
type probeProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	streams []*Stream
	read    chan error // the reader's end: EOF, or a broken line
	once    sync.Once
	err     error
}

// startProbeProcess starts argv (ProbeCommand) with the streams of specs.
func (l *Lab) startProbeProcess(argv []string, specs []StreamSpec, rate int, timeout time.Duration) ([]*Stream, error) {
	if err := checkRate(rate); err != nil {
		return nil, err
	}
	args := slices.Clone(argv[1:])
	args = append(args, "-rate", strconv.Itoa(rate), "-timeout", timeout.String())
	for _, sp := range specs {
		b, err := json.Marshal(sp)
		if err != nil {
			return nil, err
		}
		args = append(args, "-spec", string(b))
	}
	cmd := exec.Command(argv[0], args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	n := len(l.state.Processes)
	l.mu.Unlock()
	rec, err := startRecorded(cmd, "probe", "probe", "", filepath.Join(l.Dir, fmt.Sprintf("probe.%d.log", n)))
	if rec.PID != 0 {
		if rerr := l.record(func(s *State) { s.Processes = append(s.Processes, rec) }); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if err != nil {
		if rec.PID != 0 {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		return nil, err
	}
	p := &probeProcess{cmd: cmd, stdin: stdin, read: make(chan error, 1)}
	interval := time.Second / time.Duration(rate)
	for _, sp := range specs {
		p.streams = append(p.streams, &Stream{Client: sp.Client, Transport: TransportTo("udp", sp.Dst), Dst: sp.Dst,
			interval: interval, timeout: timeout, group: p})
	}
	go func() {
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var ev streamEvent
			if err := dec.Decode(&ev); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				p.read <- err
				return
			}
			if ev.I >= 0 && ev.I < len(p.streams) {
				p.streams[ev.I].apply(ev.answer())
			}
		}
	}()
	return p.streams, nil
}

// stop closes the probe process's stdin, reads its last events and waits
// for it to exit (a kill after 10 s).
func (p *probeProcess) stop() {
	p.once.Do(func() {
		_ = p.stdin.Close()
		select {
		case p.err = <-p.read:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			p.err = errors.New("probe process did not stop")
		}
		if err := p.cmd.Wait(); err != nil && p.err == nil {
			p.err = fmt.Errorf("probe process: %w", err)
		}
	})
}

// Err reports why the stream's probe process failed, once it is stopped.
func (s *Stream) Err() error {
	if s.group == nil {
		return nil
	}
	s.group.stop()
	return s.group.err
}
