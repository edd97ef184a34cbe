package main

import (
	"context"
	"flag"
	"strings"

	"github.com/anycastdns/anycastdns/internal/anycastctl"
)

// fleetCommand lists and manages the nodes that joined the control plane.
func fleetCommand() *command {
	return &command{
		name: "fleet", args: "[list] [-zone ZONE] [-json] | revoke|unrevoke|forget NODE",
		summary: "list the nodes that joined the control plane, their health and lag; revoke one",
		describe: "Subcommands:\n" +
			"  fleet [list] [-zone ZONE] [-json]   every member: state, health, announcement, lag, q/s,\n" +
			"                                      heartbeat; -zone shows the serial each holds of ZONE\n" +
			"  fleet revoke NODE                   close its stream and refuse it until unrevoke\n" +
			"  fleet unrevoke NODE                 let it join again\n" +
			"  fleet forget NODE                   drop a member that is gone for good\n" +
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
