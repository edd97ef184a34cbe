package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/version"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), got)
}

var now = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// node is a fake admin.Backend.
type node struct {
	mu       sync.Mutex
	st       admin.Status
	prefixes []netip.Prefix
	drainErr error
}

func (n *node) Status() admin.Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st
}

func (n *node) Drain(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.drainErr != nil {
		return n.drainErr
	}
	n.st.Drained, n.st.Announced = true, nil
	return nil
}

func (n *node) Undrain(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.st.Drained = false
	if n.st.Healthy {
		n.st.Announced = n.prefixes
	}
	return nil
}

func (n *node) PinLevel(_ context.Context, l level.Level, reason string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	pin := &admin.LevelSetting{Level: l, Reason: reason, Since: now.Add(-time.Second)}
	n.st.Level = &admin.Level{Level: l, Source: admin.SourceOperator, Reason: reason, Pin: pin, Control: n.st.Level.Control}
	return nil
}

func (n *node) UnpinLevel(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.st.Level = &admin.Level{Level: level.Normal, Source: admin.SourceDefault, Control: n.st.Level.Control}
	if c := n.st.Level.Control; c != nil {
		n.st.Level.Level, n.st.Level.Source, n.st.Level.Reason = c.Level, admin.SourceControl, c.Reason
	}
	return nil
}

func newNode() *node {
	prefixes := []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8:53::/48")}
	return &node{prefixes: prefixes, st: admin.Status{
		Node: "ams1", Version: "v0.4.0", Uptime: 3*time.Hour + 25*time.Minute, Ready: true, Healthy: true,
		Checks: []admin.Check{
			{Name: "self-query 192.0.2.53", OK: true, Last: now.Add(-300 * time.Millisecond), Latency: 870 * time.Microsecond},
			{Name: "zone freshness", OK: true, Last: now.Add(-300 * time.Millisecond), Latency: 2 * time.Microsecond},
		},
		Sessions: []admin.Session{
			{Peer: netip.MustParseAddr("10.0.0.1"), ASN: 64500, State: "established", Uptime: 3 * time.Hour, BFD: "up"},
		},
		Announced: prefixes,
		Level:     &admin.Level{Level: level.Normal, Source: admin.SourceDefault},
		Zones:     []admin.Zone{{Name: "example.com.", Serial: 2026031401, Records: 42, Source: "zones/example.com.zone"}},
	}}
}

// cli runs the command line with env variables vars.
func cli(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{
		stdout: &out, stderr: &errOut, now: func() time.Time { return now },
		getenv: func(k string) string { return vars[k] },
	}
	code = run(t.Context(), args, e)
	return code, out.String(), errOut.String()
}

func adminServer(t *testing.T, n *node) string {
	t.Helper()
	srv := httptest.NewServer(admin.Handler(n, nil))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestStatus(t *testing.T) {
	addr := adminServer(t, newNode())
	code, out, errOut := cli(t, nil, "status", "-admin", addr)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	golden(t, "status.golden", []byte(out))

	// The address from the environment, JSON output.
	code, out, errOut = cli(t, map[string]string{"ANYCASTCTL_ADMIN": addr}, "status", "-json")
	if code != 0 || errOut != "" {
		t.Fatalf("-json: exit %d, stderr %q", code, errOut)
	}
	golden(t, "status.json", []byte(out))
}

func TestDrainUndrain(t *testing.T) {
	n := newNode()
	addr := adminServer(t, n)
	code, out, errOut := cli(t, nil, "drain", "-admin", "http://"+addr)
	if code != 0 || errOut != "" {
		t.Fatalf("drain: exit %d, stderr %q", code, errOut)
	}
	if want := "ams1: drained; it keeps answering queries on every address\nroutes withdrawn; run anycastctl undrain to announce again\n"; out != want {
		t.Errorf("drain printed %q, want %q", out, want)
	}
	if st := n.Status(); !st.Drained {
		t.Error("node not drained")
	}
	code, _, _ = cli(t, nil, "status", "-admin", addr)
	if code != 0 {
		t.Errorf("status exit %d", code)
	}
	code, out, errOut = cli(t, map[string]string{"ANYCASTCTL_ADMIN": addr}, "undrain")
	if code != 0 || errOut != "" {
		t.Fatalf("undrain: exit %d, stderr %q", code, errOut)
	}
	if want := "ams1: undrained\nannouncing 192.0.2.53/32 2001:db8:53::/48\n"; out != want {
		t.Errorf("undrain printed %q, want %q", out, want)
	}
	if st := n.Status(); st.Drained {
		t.Error("node still drained")
	}
}

func TestLevel(t *testing.T) {
	n := newNode()
	n.st.Level.Control = &admin.LevelSetting{Level: level.Shed1, Reason: "hot", Since: now.Add(-time.Minute), Until: now.Add(time.Minute)}
	n.st.Level.Level, n.st.Level.Source, n.st.Level.Reason = level.Shed1, admin.SourceControl, "hot"
	addr := adminServer(t, n)
	var all bytes.Buffer
	for _, args := range [][]string{
		{"level"},
		{"level", "shed-3", "-reason", "rack upgrade"},
		{"level", "-reason", "the monitor is wrong", "normal"},
		{"level", "-unpin"},
	} {
		code, out, errOut := cli(t, map[string]string{"ANYCASTCTL_ADMIN": addr}, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		fmt.Fprintf(&all, "$ anycastctl %s\n%s\n", strings.Join(args, " "), out)
	}
	golden(t, "level.golden", all.Bytes())
	if l := n.Status().Level; l.Pin != nil || l.Level != level.Shed1 {
		t.Errorf("after -unpin the node has %+v", l)
	}
}

func TestFailures(t *testing.T) {
	n := newNode()
	n.drainErr = fmt.Errorf("no bgp configured: %w", admin.ErrConflict)
	addr := adminServer(t, n)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name       string
		args       []string
		wantStderr []string
	}{
		{"drain refused", []string{"drain", "-admin", addr},
			[]string{"anycastctl: drain http://" + addr + ": no bgp configured: conflict (http 409)\n"}},
		{"no node", []string{"status", "-admin", closed},
			[]string{"connection refused", "Is anycastd running here with admin.listen set to " + closed + "?"}},
		{"not an admin api", []string{"status", "-admin", addr + "/nope"},
			[]string{"anycastctl: status http://" + addr + "/nope: no such endpoint /nope/v1/status (http 404)\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, nil, tc.args...)
			if code != 1 || out != "" {
				t.Errorf("exit %d with stdout %q, want 1 and nothing", code, out)
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr %q lacks %q", errOut, want)
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantCode   int
		wantStdout string // prefix
		wantStderr string // substring
	}{
		{args: nil, wantCode: 2, wantStderr: "Usage:\n  anycastctl COMMAND"},
		{args: []string{"--help"}, wantCode: 0, wantStdout: "anycastctl — the anycastdns operator CLI"},
		{args: []string{"-h"}, wantCode: 0, wantStdout: "anycastctl — the anycastdns operator CLI"},
		{args: []string{"help"}, wantCode: 0, wantStdout: "anycastctl — the anycastdns operator CLI"},
		{args: []string{"help", "dig"}, wantCode: 0, wantStdout: "usage: anycastctl dig [-server"},
		{args: []string{"help", "nope"}, wantCode: 2, wantStderr: `anycastctl: unknown command "nope"`},
		{args: []string{"frobnicate"}, wantCode: 2, wantStderr: `anycastctl: unknown command "frobnicate"`},
		{args: []string{"status", "--help"}, wantCode: 0, wantStdout: "usage: anycastctl status [-admin ADDR] [-json]"},
		{args: []string{"drain", "-h"}, wantCode: 0, wantStdout: "usage: anycastctl drain [-admin ADDR]"},
		{args: []string{"undrain", "-help"}, wantCode: 0, wantStdout: "usage: anycastctl undrain [-admin ADDR]"},
		{args: []string{"dig", "--help"}, wantCode: 0, wantStdout: "usage: anycastctl dig"},
		{args: []string{"version"}, wantCode: 0, wantStdout: "anycastctl " + version.Get().String() + "\n"},
		{args: []string{"version", "1"}, wantCode: 2, wantStderr: "anycastctl version: unexpected argument \"1\"\n"},
		{args: []string{"dig", "www.example.com", "--", "-A"}, wantCode: 2, wantStderr: `anycastctl dig: unknown query type "-A"`},
		{args: []string{"status", "extra"}, wantCode: 2, wantStderr: "anycastctl status: unexpected argument \"extra\"\nusage: anycastctl status [-admin ADDR] [-json]\n"},
		{args: []string{"status", "-bogus"}, wantCode: 2, wantStderr: "anycastctl status: flag provided but not defined: -bogus\n"},
		{args: []string{"drain", "-admin"}, wantCode: 2, wantStderr: "anycastctl drain: flag needs an argument: -admin\n"},
		{args: []string{"dig"}, wantCode: 2, wantStderr: "anycastctl dig: want NAME [TYPE], got 0 arguments\n"},
		{args: []string{"level", "shed-4"}, wantCode: 2, wantStderr: `anycastctl level: unknown level "shed-4" (want one of normal, shed-1, shed-2, shed-3, withdrawn)`},
		{args: []string{"level", "shed-1", "shed-2"}, wantCode: 2, wantStderr: `anycastctl level: unexpected argument "shed-2"`},
		{args: []string{"level", "-unpin", "shed-2"}, wantCode: 2, wantStderr: `anycastctl level: -unpin takes no LEVEL, got "shed-2"`},
		{args: []string{"level", "-reason", "x"}, wantCode: 2, wantStderr: "anycastctl level: -reason goes with a LEVEL to pin\n"},
		{args: []string{"level", "shed-1", "-reason", "two\nlines"}, wantCode: 2, wantStderr: "anycastctl level: -reason: reason holds the control character U+000A\n"},
		{args: []string{"level", "-h"}, wantCode: 0, wantStdout: "usage: anycastctl level [-admin ADDR] [LEVEL [-reason TEXT] | -unpin]"},
		{args: []string{"dig", "a", "A", "b"}, wantCode: 2, wantStderr: "anycastctl dig: want NAME [TYPE], got 3 arguments\n"},
		{args: []string{"dig", "example.com", "BOGUS"}, wantCode: 2, wantStderr: `anycastctl dig: unknown query type "BOGUS"`},
		{args: []string{"dig", "-count", "-1", "example.com"}, wantCode: 2, wantStderr: "anycastctl dig: -count must be 0 or more, got -1\n"},
		{args: []string{"dig", "-count", "x", "example.com"}, wantCode: 2, wantStderr: `anycastctl dig: invalid value "x" for flag -count`},
		{args: []string{"dig", "-timeout", "0s", "example.com"}, wantCode: 2, wantStderr: "anycastctl dig: -timeout must be positive, got 0s\n"},
		{args: []string{"dig", "-server", "1.2.3.4:0", "example.com"}, wantCode: 2, wantStderr: `anycastctl dig: -server: invalid server address "1.2.3.4:0": bad port "0"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := cli(t, nil, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tc.wantCode, out, errOut)
			}
			if !strings.HasPrefix(out, tc.wantStdout) {
				t.Errorf("stdout %q, want it to start with %q", out, tc.wantStdout)
			}
			if !strings.Contains(errOut, tc.wantStderr) || (tc.wantStderr == "" && errOut != "") {
				t.Errorf("stderr %q, want it to contain %q", errOut, tc.wantStderr)
			}
		})
	}
}

func TestUsageGolden(t *testing.T) {
	var all bytes.Buffer
	for _, args := range [][]string{{"--help"}, {"help", "status"}, {"help", "drain"}, {"help", "undrain"}, {"help", "level"}, {"help", "dig"}, {"help", "backup"}, {"help", "restore"}, {"help", "version"}} {
		code, out, _ := cli(t, map[string]string{"ANYCASTCTL_ADMIN": "127.0.0.1:9053"}, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		fmt.Fprintf(&all, "$ anycastctl %s\n%s\n", strings.Join(args, " "), out)
	}
	golden(t, "help.golden", all.Bytes())
}

// startPoP serves www.example.com. A on 127.0.0.1 over UDP, answering the
// NSID option with nsid(n) for the nth query.
func startPoP(t *testing.T, nsid func(n int) string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		n++
		id := nsid(n)
		mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if r.Question[0].Name == "www.example.com." && r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR("www.example.com. 300 IN A 192.0.2.1")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		if o := r.IsEdns0(); o != nil {
			m.SetEdns0(1232, false)
			for _, e := range o.Option {
				if e.Option() == dns.EDNS0NSID {
					m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hex.EncodeToString([]byte(id))})
				}
			}
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDig(t *testing.T) {
	addr := startPoP(t, func(n int) string {
		if n <= 2 {
			return "ams1"
		}
		return "fra1"
	})
	// Flags may follow the name and type.
	code, out, errOut := cli(t, nil, "dig", "www.example.com", "A", "-server", addr)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{";; PoP ams1 answered www.example.com. A in ", "(" + addr + " udp)", ";; NOERROR, flags qr aa, id ",
		"\n;; ANSWER\nwww.example.com.\t300\tIN\tA\t192.0.2.1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = cli(t, nil, "dig", "-server", addr, "-count", "3", "-interval", "0s", "www.example.com")
	if code != 0 || errOut != "" {
		t.Fatalf("-count 3: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"@" + addr + ": 3 queries, 3 answers, 0 errors, 1 PoP change\n", "\nams1 ", "\nfra1 "} {
		if !strings.Contains(out, want) {
			t.Errorf("-count 3 output lacks %q:\n%s", want, out)
		}
	}
}

func TestDigFailure(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	code, out, errOut := cli(t, nil, "dig", "-server", pc.LocalAddr().String(), "-timeout", "50ms", "www.example.com")
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	if want := "anycastctl: udp " + pc.LocalAddr().String() + ": "; !strings.HasPrefix(errOut, want) || !strings.Contains(errOut, "timeout") {
		t.Errorf("stderr %q, want %q... timeout", errOut, want)
	}
	code, out, _ = cli(t, nil, "dig", "-server", pc.LocalAddr().String(), "-timeout", "50ms", "-count", "2", "-interval", "0s", "www.example.com")
	if code != 1 || !strings.Contains(out, "2 queries, 0 answers, 2 errors") {
		t.Errorf("-count 2 without answers: exit %d, stdout %q", code, out)
	}
}

// TestDigRefused: nothing on the port: the error names the address and
// the hint says how to reach the standalone.
func TestDigRefused(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	code, _, errOut := cli(t, nil, "dig", "-server", addr, "www.example.com")
	want := "anycastctl: udp " + addr + ": nothing listens there (connection refused)\n" +
		"Nothing serves DNS at " + addr + ". Give the server with -server ADDR[:PORT]; anycastd standalone (make run) serves on 127.0.0.1:5353: -server 127.0.0.1:5353.\n"
	if code != 1 || errOut != want {
		t.Errorf("exit %d, stderr\n%s\nwant exit 1 and\n%s", code, errOut, want)
	}
}
