//go:build linux

package anycast

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// --- fault injection --------------------------------------------------------

// nftShell is "nft -i" running in N, so that a rule change is one write
// to a process that is already up rather than the start of a new one: the
// clock of an injected failure starts right before that write. Changes are
// confirmed by listing the chain afterwards.
type nftShell struct {
	in    io.WriteCloser
	lines chan string
}

// nft returns N's nft shell, started on first use with the table: an
// input-hook chain (empty: accept everything) and a "block" chain that drops
// UDP and TCP to port 53 of the anycast addresses. Blocking is one rule,
// "jump block", in the input chain.
func (e *env) nft() *nftShell {
	e.t.Helper()
	if e.nftSh != nil {
		return e.nftSh
	}
	cmd := exec.Command("ip", "netns", "exec", e.nNS, "nft", "-i")
	in, err := cmd.StdinPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("nft -i in %s: %v", e.nNS, err)
	}
	untrack := trackPID(cmd.Process.Pid, "nft")
	sh := &nftShell{in: in, lines: make(chan string, 64)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			sh.lines <- sc.Text()
		}
		close(sh.lines)
	}()
	e.t.Cleanup(func() {
		_ = in.Close() // nft -i exits at the end of its input
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		untrack()
		pw.Close()
	})
	e.nftSh = sh
	e.nftDo(
		"add table inet "+e.nftTable,
		fmt.Sprintf("add chain inet %s input { type filter hook input priority 0; policy accept; }", e.nftTable),
		fmt.Sprintf("add chain inet %s block", e.nftTable),
		fmt.Sprintf("add rule inet %s block ip daddr %s meta l4proto { tcp, udp } th dport 53 drop", e.nftTable, anycast4),
		fmt.Sprintf("add rule inet %s block ip6 daddr %s meta l4proto { tcp, udp } th dport 53 drop", e.nftTable, anycast6),
	)
	return sh
}

// nftDo runs commands in N's nft shell and waits until a listing of the
// input chain confirms they ran. It returns the time right before the
// commands were written and the listing.
func (e *env) nftDo(cmds ...string) (written time.Time, listing string) {
	e.t.Helper()
	sh := e.nft()
	script := strings.Join(cmds, "\n") + "\nlist chain inet " + e.nftTable + " input\n"
	written = time.Now()
	if _, err := io.WriteString(sh.in, script); err != nil {
		e.t.Fatalf("nft in %s: %v", e.nNS, err)
	}
	var out []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-sh.lines:
			if !ok {
				e.t.Fatalf("nft in %s exited; output:\n%s", e.nNS, strings.Join(out, "\n"))
			}
			out = append(out, line)
			if line != "}" {
				continue
			}
			listing = strings.Join(out, "\n")
			if strings.Contains(listing, "Error") {
				e.t.Fatalf("nft in %s: %s\n%s", e.nNS, strings.Join(cmds, "; "), listing)
			}
			return written, listing
		case <-timeout:
			e.t.Fatalf("nft in %s: no answer after 10s to %q; output:\n%s", e.nNS, cmds, strings.Join(out, "\n"))
		}
	}
}

// blockDNS drops UDP and TCP to port 53 of the anycast addresses in N's
// input hook, in a table of its own in N only: the node's own check and
// anyone else asking there get no answer; the unicast address still
// answers. It returns the time right before the rule was written (the
// injection) and how long nft took to confirm it.
func (e *env) blockDNS() (at time.Time, confirm time.Duration) {
	e.t.Helper()
	e.nft()
	at, listing := e.nftDo(fmt.Sprintf("add rule inet %s input jump block", e.nftTable))
	confirm = time.Since(at)
	if !strings.Contains(listing, "jump block") {
		e.t.Fatalf("nft in %s: rule not in place:\n%s", e.nNS, listing)
	}
	return at, confirm
}

// unblockDNS removes the rule blockDNS added, returning the same times.
func (e *env) unblockDNS() (at time.Time, confirm time.Duration) {
	e.t.Helper()
	at, listing := e.nftDo("flush chain inet " + e.nftTable + " input")
	confirm = time.Since(at)
	if strings.Contains(listing, "jump block") {
		e.t.Fatalf("nft in %s: rule still in place:\n%s", e.nNS, listing)
	}
	return at, confirm
}
