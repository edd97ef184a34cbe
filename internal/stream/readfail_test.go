package stream

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestStreamReadFailsFirst: a stream whose node falls silent (its
// heartbeats stop, here because its status blocks) ends on the control
// plane's side by the read deadline, before anything else ends it: the
// handler must still return, so that the member leaves the registry and
// the server's Close (the control plane's shutdown) does not wait for it
// forever. It did: the writer took the reader's error from its channel,
// and the handler then waited on that channel for an error that had
// already been taken.
func TestStreamReadFailsFirst(t *testing.T) {
	reg := newFakeRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Name: "ctl", Keys: map[string][]byte{"node-key.": testSecret}, Heartbeat: 100 * time.Millisecond},
		newFakeSource(map[string]uint32{}), reg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	// Not stopped by a cleanup that waits: with the bug, Serve never
	// returns, and the test is to fail, not to hang.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, nil, nil) }()

	var stall atomic.Bool
	release := make(chan struct{})
	defer close(release)
	status := func() Status {
		if stall.Load() {
			<-release
		}
		return Status{Health: "healthy"}
	}
	c, err := NewClient(ClientConfig{URL: "http://" + ln.Addr().String(), KeyName: "node-key", Secret: testSecret, Node: "n1", PoP: "pop-n1", Version: "test"},
		newFakeZones(map[string]uint32{}), status, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	go func() { _ = c.Run(cctx) }()
	waitFor(t, "the stream", c.Live)

	stall.Store(true) // no heartbeat from now on
	left := func() bool {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		return len(reg.left) > 0
	}
	deadline := time.Now().Add(5 * time.Second)
	for !left() {
		if time.Now().After(deadline) {
			t.Fatal("the silent node's stream never ended on the control plane's side: its member never left the registry")
		}
		time.Sleep(5 * time.Millisecond)
	}
	reg.mu.Lock()
	t.Logf("left with %v", reg.left[0])
	reg.mu.Unlock()

	ccancel()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s of its context's end")
	}
}
