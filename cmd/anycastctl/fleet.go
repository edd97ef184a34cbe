package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/anycastdns/anycastdns/internal/anycastctl"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// fleetCommand lists and manages the nodes that joined the control plane.
func fleetCommand() *command {
	return &command{
		name: "fleet", args: "[list] [-zone ZONE] [-json] | revoke|unrevoke|forget NODE | pin POP LEVEL [-reason R] | unpin POP",
		summary: "list the nodes and the PoPs' levels; revoke a node, pin a PoP's level",
		describe: "Subcommands:\n" +
			"  fleet [list] [-zone ZONE] [-json]   every member: state, health, announcement, lag, q/s,\n" +
			"                                      heartbeat; -zone shows the serial each holds of ZONE\n" +
			"  fleet revoke NODE                   close its stream and refuse it until unrevoke\n" +
			"  fleet unrevoke NODE                 let it join again\n" +
			"  fleet forget NODE                   drop a member that is gone for good\n" +
			"  fleet pin POP LEVEL [-reason R]     hold a PoP at LEVEL (normal, shed-1..3, withdrawn) whatever\n" +
			"                                      the monitors say, until unpin; kept across restarts\n" +
			"  fleet unpin POP                     let the decisions set the PoP's level again\n" +
			"\n" +
			"With monitors reporting (their report section) the list is followed by the PoPs x\n" +
			"vantage points: each PoP's level, since when, its nodes, what each vantage point sees\n" +
			"(up/down, RTT p50/p95, q/s; stale reports marked) and why; then the monitors.\n" +
			"\n" +
			"A node joins by starting with the control plane's stream address and a key\n" +
			"(control.servers, control.key): the control plane has no per-node setting.\n" +
			"The same view, live, is the page /fleet of the API's address.\n" +
			"\n" + apiHelp,
		run: func(ctx context.Context, e *env, c *command, args []string) error {
			if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "-help" && args[0] != "--help" {
				args = append([]string{"list"}, args...)
			}
			return runSub(ctx, e, c, args, []subcommandSpec{
				{"list", "[-zone ZONE] [-json]", "list the members of the fleet", "", runFleetList},
				{"revoke", "NODE", "revoke a member: its stream is closed and it is refused until unrevoke",
					"The node keeps serving what it has; NOTIFY, IXFR and AXFR still reach it where\n" +
						"xfr.allow_transfer lets them. To keep it out for good, also take its key out of\n" +
						"xfr.tsig_keys (a reload).", fleetAction("revoke")},
				{"unrevoke", "NODE", "lift a revocation", "", fleetAction("unrevoke")},
				{"forget", "NODE", "remove a member that is not connected", "", fleetAction("forget")},
				{"pin", "POP LEVEL [-reason R]", "hold a PoP at a level whatever the monitors say, until unpin",
					"LEVEL is normal, shed-1, shed-2, shed-3 or withdrawn. The PoP's nodes get it at once\n" +
						"over their streams; the pin is kept across restarts of the control plane.", runFleetPin},
				{"unpin", "POP", "lift a PoP's pin: the decisions apply again", "", runFleetUnpin},
			})
		},
	}
}

func runFleetList(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	zone := fs.String("zone", "", "show the serial each member holds of `ZONE`")
	_, cl, url, err := af.parse(e, sc, fs, args, 0, 0)
	if err != nil {
		return err
	}
	v, err := cl.Fleet(ctx, *zone)
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, v)
	}
	return anycastctl.WriteFleet(e.stdout, v, *zone)
}

func fleetAction(action string) func(ctx context.Context, e *env, sc *subcommand, args []string) error {
	return func(ctx context.Context, e *env, sc *subcommand, args []string) error {
		fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
		af := addAPIFlags(fs)
		pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
		if err != nil {
			return err
		}
		var done string
		switch action {
		case "revoke":
			_, err = cl.Revoke(ctx, pos[0])
			done = "revoked: its stream is closed and it is refused until unrevoke"
		case "unrevoke":
			_, err = cl.Unrevoke(ctx, pos[0])
			done = "revocation lifted: it joins at its next attempt (within a minute)"
		default:
			_, err = cl.Forget(ctx, pos[0])
			done = "forgotten"
		}
		if err != nil {
			return apiErr(url, err)
		}
		e.print(e.stdout, pos[0]+": "+done+"\n")
		return nil
	}
}

func runFleetPin(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	reason := fs.String("reason", "", "why, shown with the level (`R`)")
	pos, cl, url, err := af.parse(e, sc, fs, args, 2, 2)
	if err != nil {
		return err
	}
	if _, err := level.Parse(pos[1]); err != nil {
		return usageError{fmt.Errorf("%s: %w", sc.name, err)}
	}
	if _, err := cl.Pin(ctx, pos[0], pos[1], *reason); err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("%s: pinned at %s; its nodes get it at once\n", pos[0], pos[1]))
	return nil
}

func runFleetUnpin(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	v, err := cl.Unpin(ctx, pos[0])
	if err != nil {
		return apiErr(url, err)
	}
	now := "no level decided yet"
	for _, p := range v.PoPs {
		if p.PoP == pos[0] && p.Level != "" {
			now = "now " + p.Level
		}
	}
	e.print(e.stdout, fmt.Sprintf("%s: unpinned; %s\n", pos[0], now))
	return nil
}
