package knotdiff

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// errNoAnswer is returned when the server sent nothing back in time (or, over
// TCP, closed the connection without an answer).
var errNoAnswer = errors.New("no answer")

// exchange sends one DNS message in wire format over "udp" or "tcp" and
// returns the first message that comes back. The transport is written here
// rather than taken from dns.Client so that exactly the same bytes, even
// malformed ones, reach both servers, and so that the answer is returned
// as-is for the comparator to judge, whatever its ID or question.
func exchange(ctx context.Context, network string, addr netip.AddrPort, wire []byte) ([]byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr.String())
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, addr, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return nil, fmt.Errorf("deadline: %w", err)
		}
	}
	switch network {
	case "udp":
		if _, err := conn.Write(wire); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		if err != nil {
			return nil, noAnswer(err)
		}
		return buf[:n], nil
	case "tcp":
		msg := make([]byte, 2+len(wire))
		binary.BigEndian.PutUint16(msg, uint16(len(wire)))
		copy(msg[2:], wire)
		if _, err := conn.Write(msg); err != nil {
			return nil, noAnswer(err)
		}
		var size [2]byte
		if _, err := io.ReadFull(conn, size[:]); err != nil {
			return nil, noAnswer(err)
		}
		buf := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(conn, buf); err != nil {
			return nil, fmt.Errorf("read tcp answer of %d octets: %w", len(buf), err)
		}
		return buf, nil
	default:
		return nil, fmt.Errorf("unknown network %q", network)
	}
}

func isNoAnswer(err error) bool { return errors.Is(err, errNoAnswer) }

// noAnswer maps the ways a server can decline to answer (time-out, closed
// connection, ICMP refusal) to errNoAnswer.
func noAnswer(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || isConnReset(err) {
		return fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	return err
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// ask sends a query and returns the answer, retrying a UDP query once when
// nothing came back (loopback rarely loses packets, but a test must not flake
// on it). wait is how long one try waits.
func ask(network string, addr netip.AddrPort, wire []byte, wait time.Duration, tries int) ([]byte, error) {
	var err error
	for range tries {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		var resp []byte
		resp, err = exchange(ctx, network, addr, wire)
		cancel()
		if err == nil {
			return resp, nil
		}
		if !errors.Is(err, errNoAnswer) {
			return nil, err
		}
	}
	return nil, err
}
