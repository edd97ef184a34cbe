package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// knot is knotd with its own configuration, changed through knotc on its
// control socket.
type knot struct {
	s      *benchkit.Server
	socket string
	origin string
	mode   string // knotcCalls or knotcBatch
}

func (k *knot) server() *benchkit.Server { return k.s }

// knotcCommands are the knotc commands of one change: a transaction that
// removes the name's A RRset and adds the new one.
func knotcCommands(origin string, c change) [][]string {
	return [][]string{
		{"zone-begin", origin},
		{"zone-unset", origin, c.Name, "A"},
		{"zone-set", origin, c.Name, "3600", "A", c.New.String()},
		{"zone-commit", origin},
	}
}

// apply runs the commands of c: one knotc each (calls), or all through one
// knotc reading them on standard input (batch).
func (k *knot) apply(ctx context.Context, c change) error {
	cmds := knotcCommands(k.origin, c)
	if k.mode == knotcBatch {
		lines := make([]string, len(cmds))
		for i, cmd := range cmds {
			lines[i] = strings.Join(cmd, " ")
		}
		cmd := exec.CommandContext(ctx, "knotc", "-s", k.socket)
		cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("knotc: %w: %s", err, strings.TrimSpace(string(out)))
		}
		// In this mode knotc exits 0 whatever happened; each command
		// prints OK or an error.
		if got := strings.Fields(string(out)); len(got) != len(cmds) || strings.Count(string(out), "OK") != len(cmds) {
			return fmt.Errorf("knotc %q: %s", lines, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for i, args := range cmds {
		out, err := exec.CommandContext(ctx, "knotc", append([]string{"-s", k.socket}, args...)...).CombinedOutput()
		if err != nil {
			if i > 0 {
				_ = exec.Command("knotc", "-s", k.socket, "zone-abort", k.origin).Run()
			}
			return fmt.Errorf("knotc %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// loadKnot starts knotd on the zone file (changes kept in the journal,
// Knot's default, the zone file never written back); the load ends when it
// answers for the zone's last host.
func (b *bench) loadKnot(ctx context.Context, dir string) (subject, loadResult, error) {
	var res loadResult
	addr, err := loopbackPorts(1)
	if err != nil {
		return nil, res, err
	}
	kc := benchkit.Knot{Dir: dir, Addr: addr[0], Origin: b.zone.Origin, ZonePath: b.zone.ZonePath, Journal: true}
	l, err := kc.Prepare()
	if err != nil {
		return nil, res, err
	}
	b.logger.Info("starting", "server", "knot", "cmd", strings.Join(l.Argv, " "))
	s, err := benchkit.Start(l, -1, 0, dir, addr[0])
	if err != nil {
		return nil, res, err
	}
	k := &knot{s: s, socket: kc.Socket(), origin: b.zone.Origin, mode: b.o.Knotc}
	at, err := b.waitLoaded(ctx, s, s.Started)
	if err != nil {
		return k, res, err
	}
	res.Total = at.Sub(s.Started)
	return k, res, nil
}
