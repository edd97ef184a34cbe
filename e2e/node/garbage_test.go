//go:build linux

package node

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// garbageSeed makes the bad input reproducible; change it to explore.
const garbageSeed = 20261126

// garbageGen produces bad packets: random bytes, valid queries with bytes
// flipped, cut short or extended, and plausible headers with random bodies.
type garbageGen struct {
	rng   *rand.Rand
	valid [][]byte
}

func newGarbageGen(t *testing.T, seed uint64) *garbageGen {
	t.Helper()
	var valid [][]byte
	for _, m := range []*dns.Msg{
		question("www.example.com.", dns.TypeA, dns.ClassINET),
		withNSID(question("www.example.com.", dns.TypeAAAA, dns.ClassINET)),
		question("id.server.", dns.TypeTXT, dns.ClassCHAOS),
		withNSID(question("a.b.c.d.example.com.", dns.TypeTXT, dns.ClassINET)),
		question("example.com.", dns.TypeSOA, dns.ClassINET),
		question("example.com.", dns.TypeAXFR, dns.ClassINET),
	} {
		valid = append(valid, packMsg(t, m))
	}
	// A question name with a compression pointer (to the question itself).
	p := packMsg(t, question("www.example.com.", dns.TypeA, dns.ClassINET))
	p = append(p[:12], append([]byte{3, 'f', 'o', 'o', 0xC0, 12}, p[12:]...)...)
	valid = append(valid, p)
	return &garbageGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), valid: valid}
}

func (g *garbageGen) next() []byte {
	r := g.rng
	base := g.valid[r.IntN(len(g.valid))]
	switch r.IntN(5) {
	case 0: // random bytes, sometimes shorter than a header
		b := make([]byte, r.IntN(600))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case 1: // a valid query with a few bytes changed
		b := append([]byte(nil), base...)
		for range 1 + r.IntN(6) {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
		return b
	case 2: // a valid query cut short
		return append([]byte(nil), base[:r.IntN(len(base))]...)
	case 3: // a valid query with trailing bytes
		b := append([]byte(nil), base...)
		for range 1 + r.IntN(40) {
			b = append(b, byte(r.Uint32()))
		}
		return b
	default: // a header with random flags and counts, then random bytes
		b := make([]byte, 12, 12+64)
		binary.BigEndian.PutUint16(b, uint16(r.Uint32()))
		binary.BigEndian.PutUint16(b[2:], uint16(r.Uint32())&^0x8000) // a query, any opcode and bits
		for i := 4; i < 12; i += 2 {
			binary.BigEndian.PutUint16(b[i:], uint16(r.IntN(4)))
		}
		for range r.IntN(64) {
			b = append(b, byte(r.Uint32()))
		}
		return b
	}
}

// checkResponse verifies that something the node sent back is a DNS
// response: a header with QR set that the library can parse.
func checkResponse(b []byte) error {
	if len(b) < 12 {
		return fmt.Errorf("%d-byte response", len(b))
	}
	if b[2]&0x80 == 0 {
		return fmt.Errorf("response without QR: %s", hex.EncodeToString(b))
	}
	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		return fmt.Errorf("response does not parse: %s: %w", hex.EncodeToString(b), err)
	}
	return nil
}

// TestGarbage sends 20,000 bad packets over UDP and TCP: the node must stay
// up, answer only with well-formed responses, keep answering valid queries,
// and count what it dropped and what it answered with FORMERR.
func TestGarbage(t *testing.T) {
	dir := t.TempDir()
	zf := filepath.Join(dir, "example.com.zone")
	writeFile(t, zf, zoneText("example.com.", 1))
	n := startNode(t, nodeOpts{dir: dir, metrics: true, args: func(p ports) []string {
		return []string{"-listen", p.DNSAddrs()[0].String(), "-zone", "example.com.=" + zf,
			"-metrics", p.MetricsAddr(), "-nsid", "garbage-node"}
	}})
	before := n.scrape()

	const udpPackets, tcpConns, tcpPerConn = 16000, 40, 100 // 20,000 in all
	var (
		mu       sync.Mutex
		badResps []string
	)
	bad := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(badResps) < 10 {
			badResps = append(badResps, err.Error())
		}
	}

	// UDP: one socket sends everything; a reader checks what comes back.
	gen := newGarbageGen(t, garbageSeed)
	uc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(n.addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	udpAnswers := 0
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 65535)
		for {
			if err := uc.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
				return
			}
			k, err := uc.Read(buf)
			if err != nil {
				return // the deadline after the last answer, or the socket closed
			}
			udpAnswers++
			if err := checkResponse(buf[:k]); err != nil {
				bad(fmt.Errorf("udp: %w", err))
			}
		}
	}()
	for i := range udpPackets {
		if _, err := uc.Write(gen.next()); err != nil {
			// A refused port would show as ECONNREFUSED here: the node died.
			t.Fatalf("udp packet %d: %v", i, err)
		}
		if i%500 == 499 {
			// Let the node keep up a little, so most packets are read.
			time.Sleep(time.Millisecond)
		}
	}
	<-readDone
	t.Logf("udp: %d bad packets sent, %d answers", udpPackets, udpAnswers)

	// TCP: each connection carries framed bad messages, some of them
	// followed by a cut-off or oversized frame, and is then half-closed.
	var wg sync.WaitGroup
	tcpAnswers := make([]int, tcpConns)
	for ci := range tcpConns {
		var stream [][]byte
		for range tcpPerConn {
			stream = append(stream, gen.next())
		}
		data := frame(stream...)
		if ci%2 == 1 {
			// A frame longer than what follows: the stream ends mid-message.
			body := gen.next()
			data = binary.BigEndian.AppendUint16(data, uint16(min(len(body)+1+gen.rng.IntN(60000), 65535)))
			data = append(data, body...)
		}
		c, err := net.DialTimeout("tcp", n.addr().String(), 3*time.Second)
		if err != nil {
			t.Fatalf("tcp connection %d: %v", ci, err)
		}
		if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				b := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, b); err != nil {
					bad(fmt.Errorf("tcp connection %d: response cut short: %w", ci, err))
					return
				}
				tcpAnswers[ci]++
				if err := checkResponse(b); err != nil {
					bad(fmt.Errorf("tcp connection %d: %w", ci, err))
				}
			}
		})
		if _, err := c.Write(data); err != nil {
			t.Errorf("tcp connection %d: write: %v", ci, err)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Errorf("tcp connection %d: close write: %v", ci, err)
		}
		if ci%8 == 7 {
			wg.Wait() // at most 8 connections at a time
		}
	}
	wg.Wait()
	total := 0
	for _, a := range tcpAnswers {
		total += a
	}
	t.Logf("tcp: %d bad messages on %d connections, %d answers", tcpConns*tcpPerConn, tcpConns, total)

	for _, e := range badResps {
		t.Error(e)
	}
	if n.exited() {
		t.Fatalf("node exited after bad input: %v", n.waitErr)
	}
	for _, network := range []string{"udp", "tcp"} {
		expectA(t, mustExchange(t, network, n.addr(), question("www.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
	}

	// The counters rose (UDP packets may still be queued: poll).
	type rise struct {
		name   string
		labels map[string]string
	}
	rises := []rise{
		{"anycastd_dropped_total", nil},
		{"anycastd_malformed_total", nil},
		{"anycastd_queries_total", map[string]string{"transport": "udp", "rcode": "FORMERR"}},
		{"anycastd_queries_total", map[string]string{"transport": "tcp", "rcode": "FORMERR"}},
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := n.scrape()
		var missing []string
		for _, r := range rises {
			b, _ := metricValue(before, r.name, r.labels)
			a, _ := metricValue(after, r.name, r.labels)
			if a <= b {
				missing = append(missing, fmt.Sprintf("%s%v: %v before, %v after", r.name, r.labels, b, a))
			}
		}
		if len(missing) == 0 {
			for _, r := range rises {
				a, _ := metricValue(after, r.name, r.labels)
				t.Logf("%s%v = %v", r.name, r.labels, a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters did not rise after bad input:\n%v", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
