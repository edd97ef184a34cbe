package health

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestJudge is the decision of one run of the DNS check, path by path:
// answered, silent (no answer in time), faulty (wrong answer, refused), or
// unused; progress is the server's count of the transport moving.
func TestJudge(t *testing.T) {
	const (
		A = outAnswered
		S = outSilent
		F = outFaulty
		U = outUnused
	)
	for _, tc := range []struct {
		name                     string
		direct, udp, tcp         outcome
		udpProgress, tcpProgress bool
		wantFlooded              bool
		wantErr                  string // "" = pass
	}{
		{name: "quiet, all answered", direct: A, udp: A, tcp: A},
		{name: "quiet, no direct path", direct: U, udp: A, tcp: A},
		{name: "flooded udp, tcp answers", direct: A, udp: S, tcp: A, udpProgress: true, wantFlooded: true},
		{name: "flooded udp and tcp, direct answers", direct: A, udp: S, tcp: S, udpProgress: true, tcpProgress: true, wantFlooded: true},
		{name: "flooded udp, tcp slow but its counts move", direct: A, udp: S, tcp: S, udpProgress: true, tcpProgress: true, wantFlooded: true},
		{name: "no direct path: nothing answered proves the answers", direct: U, udp: S, tcp: S, udpProgress: true, tcpProgress: true, wantErr: "no path answered"},
		{name: "udp wedged: silent, no progress", direct: A, udp: S, tcp: A, wantErr: "handled nothing over udp"},
		{name: "udp progress does not excuse tcp", direct: A, udp: S, tcp: S, udpProgress: true, wantErr: "handled nothing over tcp"},
		{name: "wrong answer in process under flood", direct: F, udp: S, tcp: S, udpProgress: true, tcpProgress: true, wantErr: "wrong"},
		{name: "wrong answer over udp", direct: A, udp: F, tcp: A, wantErr: "wrong"},
		{name: "tcp listener gone under flood", direct: A, udp: S, tcp: F, udpProgress: true, wantErr: "wrong"},
		{name: "direct late, the server busy", direct: S, udp: A, tcp: A, udpProgress: true, wantFlooded: true},
		{name: "direct late, nothing moves", direct: S, udp: A, tcp: A, wantErr: "handled nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := observation{direct: tc.direct, udp: tc.udp, tcp: tc.tcp, udpProgress: tc.udpProgress, tcpProgress: tc.tcpProgress}
			for _, p := range []struct {
				out outcome
				msg *string
			}{{tc.direct, &o.directErr}, {tc.udp, &o.udpErr}, {tc.tcp, &o.tcpErr}} {
				switch p.out {
				case S:
					*p.msg = "i/o timeout"
				case F:
					*p.msg = "wrong"
				}
			}
			flooded, err := judge(o)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("judge = %v, want pass", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("judge = %v, want an error with %q", err, tc.wantErr)
			}
			if flooded != tc.wantFlooded {
				t.Errorf("flooded = %v, want %v", flooded, tc.wantFlooded)
			}
		})
	}
}

// TestDNSCheckDirect: with the in-process path, a server whose UDP answers
// are lost in a flood and whose TCP is slow passes while both counts move;
// a wrong answer in process fails under the same flood; a window of two
// runs lets the late answer of the previous run count as TCP progress.
func TestDNSCheckDirect(t *testing.T) {
	yes, no := true, false
	right := func(req *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		rr, _ := dns.NewRR(req.Question[0].Name + " 300 IN SOA ns1. h. 1 2 3 4 5")
		m.Answer = []dns.RR{rr}
		return m, nil
	}
	refused := func(req *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		return m, nil
	}
	for _, tc := range []struct {
		name     string
		direct   func(*dns.Msg) (*dns.Msg, error)
		tcpMoves bool // the TCP count moves between runs (late answers)
		// pressure: nil = no Pressure count; else whether it moves
		pressure *bool
		wantPass bool
	}{
		{"flooded, answers right in process", right, true, nil, true},
		{"flooded, refused in process", refused, true, nil, false},
		{"flooded udp, tcp never moves", right, false, nil, false},
		{"flooded, under pressure", right, true, &yes, true},
		// The check's path is cut (a firewall on its address) while the
		// server works for others: nothing overflows, so it is broken.
		// This passed before Pressure: e2e/anycast TestDNSFailure's
		// node stayed announced with its DNS blocked.
		{"path cut, the server busy with others", right, true, &no, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var read atomic.Uint64
			// UDP read and never answered; TCP accepted and never answered.
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pc.Close() })
			ln, err := net.Listen("tcp", pc.LocalAddr().String())
			if err != nil {
				t.Skip("port taken for tcp:", err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			go func() {
				buf := make([]byte, 512)
				for {
					if _, _, err := pc.ReadFrom(buf); err != nil {
						return
					}
					read.Add(1)
				}
			}()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					t.Cleanup(func() { _ = c.Close() })
				}
			}()
			var tcp atomic.Uint64
			d := &DNSCheck{Addr: netip.MustParseAddrPort(pc.LocalAddr().String()), Zones: zones("example.com."),
				Direct: tc.direct, UDPProgress: read.Load, TCPProgress: tcp.Load}
			var pressure atomic.Uint64
			if tc.pressure != nil {
				d.Pressure = pressure.Load
			}
			var err2 error
			for range 3 {
				if tc.tcpMoves {
					tcp.Add(1)
				}
				if tc.pressure != nil && *tc.pressure {
					pressure.Add(1)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				err2 = d.Check(ctx)
				cancel()
			}
			if (err2 == nil) != tc.wantPass {
				t.Errorf("Check = %v, want pass %v", err2, tc.wantPass)
			}
		})
	}
}

// TestAcceptQueue reads a listener's accept queue from the kernel: the
// connections not accepted yet, 0 once they are, an error for a port
// nobody listens on.
func TestAcceptQueue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	if n, err := AcceptQueue(addr); err != nil || n != 0 {
		t.Fatalf("AcceptQueue before any client = %d, %v; want 0", n, err)
	}
	for range 3 {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if n, err := AcceptQueue(addr); err != nil || n != 3 {
		t.Errorf("AcceptQueue with 3 waiting = %d, %v; want 3", n, err)
	}
	for range 3 {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if n, err := AcceptQueue(addr); err != nil || n != 0 {
		t.Errorf("AcceptQueue once accepted = %d, %v; want 0", n, err)
	}
	ln.Close()
	if _, err := AcceptQueue(addr); err == nil {
		t.Error("AcceptQueue of a closed listener: no error")
	}
}

// TestDNSCheckAcceptQueue: UDP flooded (its count moves), TCP unanswered
// and its count still: a listener whose accept loop keeps up (the queue
// empties) is flooded, one that never accepts (a hung loop) is broken.
func TestDNSCheckAcceptQueue(t *testing.T) {
	right := func(req *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		rr, _ := dns.NewRR(req.Question[0].Name + " 300 IN SOA ns1. h. 1 2 3 4 5")
		m.Answer = []dns.RR{rr}
		return m, nil
	}
	for _, accepts := range []bool{true, false} {
		t.Run(map[bool]string{true: "accepts", false: "hung accept loop"}[accepts], func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = pc.Close() })
			ln, err := net.Listen("tcp", pc.LocalAddr().String())
			if err != nil {
				t.Skip("port taken for tcp:", err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			var read atomic.Uint64
			go func() {
				buf := make([]byte, 512)
				for {
					if _, _, err := pc.ReadFrom(buf); err != nil {
						return
					}
					read.Add(1)
				}
			}()
			if accepts {
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						t.Cleanup(func() { _ = c.Close() })
					}
				}()
			}
			addr := netip.MustParseAddrPort(pc.LocalAddr().String())
			var tcp atomic.Uint64
			d := &DNSCheck{Addr: addr, Zones: zones("example.com."), Direct: right, UDPProgress: read.Load, TCPProgress: tcp.Load,
				TCPAcceptQueue: func() (int, error) { return AcceptQueue(addr) }}
			var err2 error
			for range 2 {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				err2 = d.Check(ctx)
				cancel()
			}
			if (err2 == nil) != accepts {
				t.Errorf("Check = %v, want pass %v", err2, accepts)
			}
		})
	}
}

// TestProcCounter reads the kernel's counter files in their two layouts,
// and KernelPressure reads this machine's.
func TestProcCounter(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors\nUdp: 10 2 7 9 5\nUdpLite: InDatagrams RcvbufErrors\nUdpLite: 0 99\n"
	snmp6 := "Udp6InDatagrams                 \t12\nUdp6RcvbufErrors                \t3\n"
	for _, tc := range []struct {
		name, text, table, field string
		want                     uint64
		wantErr                  bool
	}{
		{"table", snmp, "Udp", "RcvbufErrors", 5, false},
		{"another table's field", snmp, "UdpLite", "RcvbufErrors", 99, false},
		{"absent field", snmp, "Udp", "NoSuchField", 0, false},
		{"absent table", snmp, "TcpExt", "ListenDrops", 0, false},
		{"name value lines", snmp6, "", "Udp6RcvbufErrors", 3, false},
		{"names and values differ", "Udp: A B\nUdp: 1\n", "Udp", "B", 0, true},
		{"bad value", "Udp: A B\nUdp: 1 x\n", "Udp", "B", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := procCounter(tc.text, tc.table, tc.field)
			if (err != nil) != tc.wantErr || n != tc.want {
				t.Errorf("procCounter = %d, %v; want %d, error %v", n, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := KernelPressure(); err != nil {
		t.Errorf("KernelPressure on this machine: %v", err)
	}
}

// TestProgressNeedsPressure: with Pressure set, a late DNS check is held
// (its Progress moves) only when the work and the pressure both moved.
func TestProgressNeedsPressure(t *testing.T) {
	var work, pressure atomic.Uint64
	d := &DNSCheck{UDPProgress: work.Load, Pressure: pressure.Load}
	first := d.Progress()
	work.Add(10)
	if got := d.Progress(); got != first {
		t.Errorf("work without pressure: Progress %d → %d, want unmoved", first, got)
	}
	pressure.Add(1)
	if got := d.Progress(); got != first {
		t.Errorf("pressure without work: Progress %d → %d, want unmoved", first, got)
	}
	work.Add(1)
	pressure.Add(1)
	if got := d.Progress(); got <= first {
		t.Errorf("work and pressure: Progress %d → %d, want moved", first, got)
	}
	plain := &DNSCheck{UDPProgress: work.Load}
	before := plain.Progress()
	work.Add(1)
	if plain.Progress() <= before {
		t.Error("without Pressure, Progress is the work count")
	}
}
