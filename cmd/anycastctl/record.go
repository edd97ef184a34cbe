package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/anycastdns/anycastdns/internal/api"
)

// recordCommand manages the RRsets of a zone over the control plane's API.
func recordCommand() *command {
	return &command{
		name: "record", args: "set|delete|list [flags] ZONE [NAME [TYPE [DATA...]]]",
		summary: "set, delete and list the records of a zone on the control plane",
		describe: "Subcommands:\n" +
			"  record set ZONE NAME TYPE [-ttl N] DATA...  replace the records of NAME and TYPE\n" +
			"  record delete ZONE NAME TYPE                 delete them\n" +
			"  record list ZONE [NAME [TYPE]] [-json]\n" +
			"\n" +
			"NAME is relative to the zone (www, @ for the apex) unless it ends in a dot or\n" +
			"in the zone's name. DATA is one record's data each, in zone-file form; quote\n" +
			"data with spaces: record set example.com @ MX '10 mail'. Every write bumps the\n" +
			"zone's serial and is sent to the nodes by IXFR.\n" +
			"\n" + apiHelp + "\n" +
			"Run 'anycastctl record SUBCOMMAND -help' for its flags.",
		run: func(ctx context.Context, e *env, c *command, args []string) error {
			return runSub(ctx, e, c, args, []subcommandSpec{
				{"set", "ZONE NAME TYPE [-ttl N] [-if-match ETAG] DATA...", "replace the records of one name and type",
					"Each DATA argument is one record's data, names in it relative to the zone\n" +
						"unless they end in a dot. With -if-match ETAG (as record list ZONE NAME TYPE\n" +
						"prints it), the write happens only if the records are still those; otherwise\n" +
						"it fails and changes nothing.", runRecordSet},
				{"delete", "ZONE NAME TYPE", "delete the records of one name and type", "", runRecordDelete},
				{"list", "ZONE [NAME [TYPE]] [-json]", "list a zone's records, or those at a name (of a type)", "", runRecordList},
			})
		},
	}
}

func runRecordSet(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	ttl := fs.Uint("ttl", 3600, "the records' `TTL` in seconds")
	ifMatch := fs.String("if-match", "", "write only if the RRset's `ETAG` is still this (* = if it exists)")
	pos, err := parseSub(e, sc, fs, args, 4, 1<<16)
	if err != nil {
		return err
	}
	if *ttl > 1<<31-1 {
		return sc.usage(usagef("-ttl must be at most %d, got %d", 1<<31-1, *ttl))
	}
	cl, url, err := af.client(e)
	if err != nil {
		return sc.usage(err)
	}
	res, err := cl.SetRRset(ctx, pos[0], pos[1], pos[2], api.RRset{TTL: uint32(*ttl), Records: pos[3:]}, *ifMatch)
	if err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("zone %s serial %d\n", strings.ToLower(strings.TrimSuffix(pos[0], "."))+".", res.Serial))
	if res.RRset != nil {
		return writeRRsets(e.stdout, []api.RRset{*res.RRset})
	}
	return nil
}

func runRecordDelete(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	pos, cl, url, err := af.parse(e, sc, fs, args, 3, 3)
	if err != nil {
		return err
	}
	res, err := cl.DeleteRRset(ctx, pos[0], pos[1], pos[2], "")
	if err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("deleted %s %s from zone %s, serial %d\n", pos[1], strings.ToUpper(pos[2]), pos[0], res.Serial))
	return nil
}

func runRecordList(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 3)
	if err != nil {
		return err
	}
	var sets []api.RRset
	etag := ""
	switch len(pos) {
	case 3:
		set, tag, err := cl.RRset(ctx, pos[0], pos[1], pos[2])
		if err != nil {
			return apiErr(url, err)
		}
		sets, etag = []api.RRset{set}, tag
	default:
		name := ""
		if len(pos) == 2 {
			name = pos[1]
		}
		if sets, err = cl.RRsets(ctx, pos[0], name); err != nil {
			return apiErr(url, err)
		}
	}
	if *asJSON {
		return printJSON(e, api.RRsetList{RRsets: sets})
	}
	if len(sets) == 0 {
		e.print(e.stdout, "no records\n")
		return nil
	}
	if err := writeRRsets(e.stdout, sets); err != nil {
		return err
	}
	if etag != "" {
		e.print(e.stdout, "ETag: "+etag+"\n")
	}
	return nil
}
