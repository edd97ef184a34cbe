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
			"data with spaces: record set example.com @ MX '10 mail'. A TXT or SPF DATA is\n" +
			"one string as it is typed (record set example.com @ TXT 'v=spf1 mx -all')\n" +
			"unless it starts with a double quote: then it is zone-file text, for several\n" +
			"strings or escapes ('\"part 1\" \"part 2\"'). Every write bumps the zone's serial\n" +
			"and is sent to the nodes by IXFR.\n" +
			"\n" + apiHelp + "\n" +
			"Run 'anycastctl record SUBCOMMAND -help' for its flags.",
		run: func(ctx context.Context, e *env, c *command, args []string) error {
			return runSub(ctx, e, c, args, []subcommandSpec{
				{"set", "ZONE NAME TYPE [-ttl N] [-if-match ETAG] DATA...", "replace the records of one name and type",
					"Each DATA argument is one record's data, names in it relative to the zone\n" +
						"unless they end in a dot; for TXT and SPF, an argument that does not start with\n" +
						"a double quote is one string, as it is typed. Without -ttl, records that exist\n" +
						"keep their TTL and new ones get the TTL of the zone's SOA record (the $TTL of\n" +
						"most zone files). With -if-match ETAG (as record list ZONE NAME TYPE prints\n" +
						"it), the write happens only if the records are still those; otherwise it fails\n" +
						"and changes nothing.", runRecordSet},
				{"delete", "ZONE NAME TYPE", "delete the records of one name and type", "", runRecordDelete},
				{"list", "ZONE [NAME [TYPE]] [-json]", "list a zone's records, or those at a name (of a type)", "", runRecordList},
			})
		},
	}
}

func runRecordSet(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	ttl := fs.Uint("ttl", 0, "the records' `TTL` in seconds (default: the RRset's TTL, else the zone's SOA TTL)")
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
	set := api.PutRRset{Records: recordData(pos[2], pos[3:])}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "ttl" {
			v := uint32(*ttl)
			set.TTL = &v
		}
	})
	res, err := cl.PutRRset(ctx, pos[0], pos[1], pos[2], set, *ifMatch)
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

// recordData turns DATA arguments into the API's record data. A TXT or SPF
// argument is one character-string as it is typed, quoted here, unless it
// starts with a double quote (zone-file text, for several strings or for
// escapes) or is RFC 3597 \# data: the shell has removed the quotes of
// "hello world", which zone-file syntax would read as two strings.
func recordData(typ string, args []string) []string {
	switch strings.ToUpper(typ) {
	case "TXT", "SPF":
	default:
		return args
	}
	out := make([]string, len(args))
	for i, a := range args {
		if t := strings.TrimLeft(a, " \t"); strings.HasPrefix(t, `"`) || strings.HasPrefix(t, `\#`) {
			out[i] = a
			continue
		}
		out[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
	}
	return out
}
