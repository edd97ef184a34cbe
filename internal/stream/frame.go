package stream

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
)

// Frame types. Each frame is authenticated with the session key (see
// frameConn); the first one the server sends, the challenge, carries its
// nonce in the clear so that the node can derive that key.
const (
	frameChallenge byte = 1  // server → node: server nonce, then serverHello (JSON)
	frameHello     byte = 2  // node → server: nodeHello (JSON)
	frameHeartbeat byte = 3  // node → server: Heartbeat (JSON)
	frameXfr       byte = 4  // server → node: zone name, then one DNS message of a transfer
	frameXfrEnd    byte = 5  // server → node: zone name, then the transfer's serial (4 bytes)
	frameAck       byte = 6  // node → server: ack (JSON)
	frameKeepalive byte = 7  // server → node: nothing (liveness)
	frameBye       byte = 8  // server → node: bye (JSON), then the server closes
	frameAuth      byte = 9  // node → server: nothing; its MAC proves the key before the hello, which may be large
	frameLevel     byte = 10 // server → node: Level (JSON), only to a node whose hello said it takes them
	frameSteering  byte = 11 // server → node: Steering (JSON), only to a node whose hello said it takes them
)

func frameName(t byte) string {
	switch t {
	case frameChallenge:
		return "challenge"
	case frameHello:
		return "hello"
	case frameHeartbeat:
		return "heartbeat"
	case frameXfr:
		return "xfr"
	case frameXfrEnd:
		return "xfr-end"
	case frameAck:
		return "ack"
	case frameKeepalive:
		return "keepalive"
	case frameBye:
		return "bye"
	case frameAuth:
		return "auth"
	case frameLevel:
		return "level"
	case frameSteering:
		return "steering"
	}
	return fmt.Sprintf("type%d", t)
}

// Sizes of the framing.
const (
	nonceLen = 32
	macLen   = sha256.Size
	// MaxFrame bounds one frame (type, payload and MAC): a DNS message is
	// at most 64 KiB, and the largest frame is a hello listing the serial
	// of every zone (about 40 bytes a zone).
	MaxFrame = 64 << 20
	// maxFirstFrame bounds the first frame of each side, read before
	// the peer has proven it holds the key.
	maxFirstFrame = 64 << 10
)

// Errors of the framing, matched with errors.Is.
var (
	// ErrAuth: a frame's MAC does not verify: the peer does not hold the
	// key, or the stream was tampered with.
	ErrAuth = errors.New("stream authentication failed")
	// ErrProtocol: a frame that is malformed or out of place.
	ErrProtocol = errors.New("stream protocol error")
)

// Directions, mixed into each frame's MAC so that a frame cannot be
// reflected back to its sender.
const (
	dirServer byte = 'S' // written by the control plane
	dirNode   byte = 'N' // written by the node
)

// sessionKey derives the key of one stream from the shared TSIG secret, the
// two nonces and what the node claimed in its request: only a holder of
// the secret can compute it, and it differs for every connection, so a
// recorded stream replays nowhere.
func sessionKey(secret []byte, keyName, node string, nodeNonce, serverNonce []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("anycastd stream v1\x00"))
	m.Write([]byte(keyName))
	m.Write([]byte{0})
	m.Write([]byte(node))
	m.Write([]byte{0})
	m.Write(nodeNonce)
	m.Write(serverNonce)
	return m.Sum(nil)
}

// frameConn reads and writes authenticated frames:
//
//	length (4 bytes, big endian: type + payload + MAC) | type | payload | MAC
//
// where the MAC is HMAC-SHA256 under the session key of the writer's
// direction, the frame's sequence number in that direction (8 bytes) and
// the length, type and payload. A frame that was dropped, replayed,
// reordered, altered or injected fails the MAC of the next one read.
// Writes are safe for concurrent use; reads are not.
type frameConn struct {
	r     *bufio.Reader
	rdir  byte
	rseq  uint64
	rmac  hash.Hash
	flush func() error

	wmu  sync.Mutex
	w    io.Writer
	wdir byte
	wseq uint64
	wmac hash.Hash
	wbuf []byte
}

func newFrameConn(r io.Reader, w io.Writer, flush func() error, server bool) *frameConn {
	c := &frameConn{r: bufio.NewReaderSize(r, 64<<10), w: w, flush: flush, rdir: dirServer, wdir: dirNode}
	if server {
		c.rdir, c.wdir = dirNode, dirServer
	}
	return c
}

// setKey installs the session key for both directions.
func (c *frameConn) setKey(key []byte) {
	c.rmac = hmac.New(sha256.New, key)
	c.wmu.Lock()
	c.wmac = hmac.New(sha256.New, key)
	c.wmu.Unlock()
}

func frameMAC(m hash.Hash, dir byte, seq uint64, head []byte, payload []byte) []byte {
	m.Reset()
	var s [9]byte
	s[0] = dir
	binary.BigEndian.PutUint64(s[1:], seq)
	m.Write(s[:])
	m.Write(head)
	m.Write(payload)
	return m.Sum(nil)
}

// write sends one frame made of the concatenation of parts and flushes it.
func (c *frameConn) write(t byte, parts ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wmac == nil {
		return fmt.Errorf("%w: write before the session key", ErrProtocol)
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	size := 1 + n + macLen
	if size > MaxFrame {
		return fmt.Errorf("%w: %s frame of %d bytes is over %d", ErrProtocol, frameName(t), size, MaxFrame)
	}
	buf := c.wbuf[:0]
	buf = binary.BigEndian.AppendUint32(buf, uint32(size))
	buf = append(buf, t)
	for _, p := range parts {
		buf = append(buf, p...)
	}
	buf = append(buf, frameMAC(c.wmac, c.wdir, c.wseq, buf[:5], buf[5:])...)
	c.wseq++
	if cap(buf) <= 256<<10 {
		c.wbuf = buf
	} else {
		c.wbuf = nil
	}
	if _, err := c.w.Write(buf); err != nil {
		return fmt.Errorf("write %s frame: %w", frameName(t), err)
	}
	if c.flush != nil {
		if err := c.flush(); err != nil {
			return fmt.Errorf("flush %s frame: %w", frameName(t), err)
		}
	}
	return nil
}

// readRaw reads one frame of at most limit bytes without checking its
// MAC; it returns the header, the payload and the MAC.
func (c *frameConn) readRaw(limit uint32) (head, payload, mac []byte, err error) {
	head = make([]byte, 5)
	if _, err := io.ReadFull(c.r, head); err != nil {
		return nil, nil, nil, err
	}
	size := binary.BigEndian.Uint32(head)
	if size < 1+macLen || size > limit {
		return nil, nil, nil, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, size)
	}
	body := make([]byte, size-1)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, nil, nil, fmt.Errorf("%s frame cut short: %w", frameName(head[4]), err)
	}
	return head, body[:len(body)-macLen], body[len(body)-macLen:], nil
}

// verify checks the MAC of a frame read with readRaw and advances the
// read sequence.
func (c *frameConn) verify(head, payload, mac []byte) error {
	if c.rmac == nil {
		return fmt.Errorf("%w: frame before the session key", ErrProtocol)
	}
	want := frameMAC(c.rmac, c.rdir, c.rseq, head, payload)
	if !hmac.Equal(want, mac) {
		return fmt.Errorf("%w: %s frame %d", ErrAuth, frameName(head[4]), c.rseq)
	}
	c.rseq++
	return nil
}

// read reads and authenticates one frame.
func (c *frameConn) read() (byte, []byte, error) {
	return c.readLimited(MaxFrame)
}

// readLimited is read with a smaller bound on the frame.
func (c *frameConn) readLimited(limit uint32) (byte, []byte, error) {
	head, payload, mac, err := c.readRaw(limit)
	if err != nil {
		return 0, nil, err
	}
	if err := c.verify(head, payload, mac); err != nil {
		return 0, nil, err
	}
	return head[4], payload, nil
}

// zonePayload is a zone name as frames carry it before the rest of their
// payload: its length (2 bytes), then its presentation form.
func zonePayload(zone string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(zone))), zone...)
}

// splitZone splits a payload made by zonePayload + rest.
func splitZone(p []byte) (string, []byte, error) {
	if len(p) < 2 {
		return "", nil, fmt.Errorf("%w: zone name cut short", ErrProtocol)
	}
	n := int(binary.BigEndian.Uint16(p))
	if n == 0 || len(p) < 2+n {
		return "", nil, fmt.Errorf("%w: zone name cut short", ErrProtocol)
	}
	return string(p[2 : 2+n]), p[2+n:], nil
}
