package stream

import (
	"bytes"
	"errors"
	"testing"
)

// pair returns a server and a node frameConn over two buffers, keyed.
func pair(t *testing.T, key []byte) (srv, node *frameConn, toNode, toServer *bytes.Buffer) {
	t.Helper()
	toNode, toServer = &bytes.Buffer{}, &bytes.Buffer{}
	srv = newFrameConn(toServer, toNode, nil, true)
	node = newFrameConn(toNode, toServer, nil, false)
	srv.setKey(key)
	node.setKey(key)
	return srv, node, toNode, toServer
}

func TestFrameRoundTrip(t *testing.T) {
	key := sessionKey([]byte("secret"), "k.", "n1", make([]byte, 32), make([]byte, 32))
	srv, node, _, _ := pair(t, key)
	for i, p := range [][]byte{nil, []byte("one"), bytes.Repeat([]byte{7}, 100000)} {
		if err := srv.write(frameXfr, zonePayload("example.com."), p); err != nil {
			t.Fatal(err)
		}
		typ, got, err := node.read()
		if err != nil || typ != frameXfr {
			t.Fatalf("frame %d: %d, %v", i, typ, err)
		}
		z, rest, err := splitZone(got)
		if err != nil || z != "example.com." || !bytes.Equal(rest, p) {
			t.Fatalf("frame %d: zone %q, %d bytes, %v", i, z, len(rest), err)
		}
	}
	if err := node.write(frameAck, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if typ, _, err := srv.read(); err != nil || typ != frameAck {
		t.Fatalf("node → server: %d, %v", typ, err)
	}
}

// TestFrameTampering: a frame altered, replayed, dropped, reflected or
// made with another key fails its MAC.
func TestFrameTampering(t *testing.T) {
	key := sessionKey([]byte("secret"), "k.", "n1", make([]byte, 32), make([]byte, 32))
	other := sessionKey([]byte("secret"), "k.", "n2", make([]byte, 32), make([]byte, 32))
	tests := []struct {
		name string
		do   func(t *testing.T) error
	}{
		{"altered", func(t *testing.T) error {
			srv, node, toNode, _ := pair(t, key)
			_ = srv.write(frameXfr, []byte("payload"))
			toNode.Bytes()[7] ^= 1
			_, _, err := node.read()
			return err
		}},
		{"replayed", func(t *testing.T) error {
			srv, node, toNode, _ := pair(t, key)
			_ = srv.write(frameKeepalive)
			frame := bytes.Clone(toNode.Bytes())
			if _, _, err := node.read(); err != nil {
				t.Fatal(err)
			}
			toNode.Write(frame)
			_, _, err := node.read()
			return err
		}},
		{"dropped", func(t *testing.T) error {
			srv, node, toNode, _ := pair(t, key)
			_ = srv.write(frameKeepalive)
			toNode.Reset()
			_ = srv.write(frameKeepalive)
			_, _, err := node.read()
			return err
		}},
		{"reflected", func(t *testing.T) error {
			srv, _, toNode, _ := pair(t, key)
			_ = srv.write(frameKeepalive)
			back := newFrameConn(bytes.NewReader(toNode.Bytes()), &bytes.Buffer{}, nil, true)
			back.setKey(key)
			_, _, err := back.read()
			return err
		}},
		{"other key", func(t *testing.T) error {
			srv, _, toNode, _ := pair(t, other)
			_ = srv.write(frameKeepalive)
			node := newFrameConn(toNode, &bytes.Buffer{}, nil, false)
			node.setKey(key)
			_, _, err := node.read()
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(t); !errors.Is(err, ErrAuth) {
				t.Errorf("read: %v, want ErrAuth", err)
			}
		})
	}
}

func TestFrameLimits(t *testing.T) {
	srv, _, _, _ := pair(t, []byte("k"))
	if err := srv.write(frameXfr, make([]byte, MaxFrame)); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized write: %v, want ErrProtocol", err)
	}
	node := newFrameConn(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 4}), &bytes.Buffer{}, nil, false)
	node.setKey([]byte("k"))
	if _, _, err := node.read(); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized read: %v, want ErrProtocol", err)
	}
	// Before the peer proved its key, a frame of more than 64 KiB is
	// refused before it is read.
	var b bytes.Buffer
	w := newFrameConn(&bytes.Buffer{}, &b, nil, true)
	w.setKey([]byte("k"))
	if err := w.write(frameHello, make([]byte, maxFirstFrame)); err != nil {
		t.Fatal(err)
	}
	r := newFrameConn(&b, &bytes.Buffer{}, nil, false)
	r.setKey([]byte("k"))
	if _, _, err := r.readLimited(maxFirstFrame); !errors.Is(err, ErrProtocol) {
		t.Errorf("large first frame: %v, want ErrProtocol", err)
	}
	if _, _, err := splitZone([]byte{0, 5, 'a'}); !errors.Is(err, ErrProtocol) {
		t.Errorf("short zone: %v, want ErrProtocol", err)
	}
}

// FuzzFrameRead feeds arbitrary bytes to the frame reader: errors, never a
// panic or a frame accepted without the key.
func FuzzFrameRead(f *testing.F) {
	key := []byte("fuzz key")
	var b bytes.Buffer
	w := newFrameConn(&bytes.Buffer{}, &b, nil, true)
	w.setKey(key)
	_ = w.write(frameXfr, zonePayload("example.com."), []byte("msg"))
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 33, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newFrameConn(bytes.NewReader(data), &bytes.Buffer{}, nil, false)
		r.setKey([]byte("another key"))
		for {
			typ, p, err := r.read()
			if err != nil {
				return
			}
			t.Fatalf("frame %d (%d bytes) accepted under a key it was not made with", typ, len(p))
		}
	})
}
