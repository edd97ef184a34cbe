package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
)

// The control plane's API: where and with which token.
const (
	envAPI     = "ANYCASTCTL_API"
	envToken   = "ANYCASTCTL_TOKEN"      //nolint:gosec // the name of an environment variable, not a credential
	defaultAPI = "http://127.0.0.1:8080" // api.listen's default, and anycastd standalone's -api
)

// subcommand is one action of a command with several (zone, record).
type subcommand struct {
	*command
	action string
}

// zoneCommand manages zones over the control plane's API.
func zoneCommand() *command {
	return &command{
		name: "zone", args: "create|list|show|delete|import|export [flags] [ZONE] [FILE]",
		summary: "create, list, show, delete, import and export zones on the control plane",
		describe: "Subcommands:\n" +
			"  zone create ZONE -file FILE|- [-policy P]    from RFC 1035 text\n" +
			"  zone create ZONE -ns NAME [-ns NAME] [-mbox NAME] [-policy P]\n" +
			"                                               a new empty zone: SOA and NS\n" +
			"  zone list [-json]\n" +
			"  zone show ZONE [-json]                       description and every record\n" +
			"  zone delete ZONE [-yes]                      asks first unless -yes\n" +
			"  zone import ZONE FILE|-                      replace all content (creates the zone)\n" +
			"  zone export ZONE [-o FILE]                   RFC 1035 text\n" +
			"\n" +
			"Zone names are letters, digits, '-', '_' and '/' (what the nodes serve); the root\n" +
			"zone (.) and top-level domains are created only with -allow-tld.\n" +
			"\n" + apiHelp + "\n" +
			"Run 'anycastctl zone SUBCOMMAND -help' for its flags.",
		run: func(ctx context.Context, e *env, c *command, args []string) error {
			return runSub(ctx, e, c, args, []subcommandSpec{
				{"create", "ZONE (-file FILE|- | -ns NAME...) [-mbox NAME] [-policy increment|date] [-allow-tld]", "create a zone from RFC 1035 text or as a new empty zone",
					"With -file, the text is read from FILE (- for standard input); $INCLUDE is refused.\n" +
						"With -ns, the zone gets an SOA (serial 1, mailbox -mbox, default hostmaster.ZONE)\n" +
						"and the NS records; names are relative to the zone unless they end in a dot.\n" +
						"The root zone (.) and top-level domains (com, test) need -allow-tld.", runZoneCreate},
				{"list", "[-json]", "list the zones with their serials", "", runZoneList},
				{"show", "ZONE [-json]", "show a zone's serial, policy and every record", "", runZoneShow},
				{"delete", "ZONE [-yes]", "delete a zone and its change log",
					"The zone is withdrawn from every node. Without -yes, the command asks for a\n" +
						"confirmation when standard input is a terminal, and refuses otherwise.", runZoneDelete},
				{"import", "ZONE FILE|- [-allow-tld]", "replace a zone's content with RFC 1035 text, creating it if needed",
					"The serial follows the zone's policy unless the text's SOA has a newer one; text\n" +
						"that changes nothing but an older serial leaves the zone as it is. A zone signed\n" +
						"with DNSSEC is stored as signed, serial included: it must be newer. An import\n" +
						"that creates the root zone or a top-level domain needs -allow-tld.", runZoneImport},
				{"export", "ZONE [-o FILE]", "print a zone as RFC 1035 text", "", runZoneExport},
			})
		},
	}
}

const apiHelp = "The control plane's API is at -api or $" + envAPI + " (default " + defaultAPI + "),\n" +
	"with the bearer token of -token, -token-file, $" + envToken + " or $" + envTokenFile + "."

type subcommandSpec struct {
	action, args, summary, describe string
	run                             func(ctx context.Context, e *env, sc *subcommand, args []string) error
}

// runSub dispatches "COMMAND ACTION args" to the action.
func runSub(ctx context.Context, e *env, c *command, args []string, specs []subcommandSpec) error {
	actions := make([]string, len(specs))
	for i, s := range specs {
		actions[i] = s.action
	}
	if len(args) == 0 {
		return usagef("missing subcommand (%s)", strings.Join(actions, ", "))
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		e.print(e.stdout, commandHelp(c, flag.NewFlagSet(c.name, flag.ContinueOnError)))
		return errHelped
	}
	i := slices.IndexFunc(specs, func(s subcommandSpec) bool { return s.action == args[0] })
	if i < 0 {
		return usagef("unknown subcommand %q (want %s)", args[0], strings.Join(actions, ", "))
	}
	s := specs[i]
	sc := &subcommand{
		command: &command{name: c.name + " " + s.action, args: s.args, summary: s.summary, describe: s.describe},
		action:  s.action,
	}
	if sc.describe != "" {
		sc.describe += "\n\n"
	}
	sc.describe += apiHelp
	return s.run(ctx, e, sc, args[1:])
}

// usage prefixes a usage error with the subcommand, since the usage line
// printed after it is the command's.
func (sc *subcommand) usage(err error) error {
	if err == nil || errors.Is(err, errHelped) {
		return err
	}
	return usagef("%s: %v (usage: %s)", sc.action, errors.Unwrap(err), sc.synopsis())
}

// apiFlags are the flags of every subcommand that talks to the API.
type apiFlags struct {
	url, token, tokenFile *string
}

func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		url:   fs.String("api", "", "the control plane's API `URL` (default $"+envAPI+", else "+defaultAPI+")"),
		token: fs.String("token", "", "the API bearer `token` (default $"+envToken+"); other users see it in ps: prefer -token-file"),
		tokenFile: fs.String("token-file", "", "read the API token from `file`, such as anycastd standalone's DATA/api.token (default $"+
			envTokenFile+")"),
	}
}

// parse parses a subcommand's arguments (parseSub) and builds its API
// client; either failure is reported with the subcommand's usage.
func (f apiFlags) parse(e *env, sc *subcommand, fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, *apiclient.Client, string, error) {
	pos, err := parseSub(e, sc, fs, args, minArgs, maxArgs)
	if err != nil {
		return nil, nil, "", err
	}
	cl, url, err := f.client(e)
	if err != nil {
		return nil, nil, "", sc.usage(err)
	}
	return pos, cl, url, nil
}

// client builds the API client from the flags and the environment.
func (f apiFlags) client(e *env) (*apiclient.Client, string, error) {
	u := *f.url
	if u == "" {
		u = e.getenv(envAPI)
	}
	if u == "" {
		u = defaultAPI
	}
	token, err := resolveToken(e, *f.token, *f.tokenFile)
	if err != nil {
		return nil, "", err
	}
	c, err := apiclient.New(u, token, e.http)
	if err != nil {
		return nil, "", usageError{err}
	}
	return c, u, nil
}

// apiErr adds advice to the errors an operator can fix.
func apiErr(url string, err error) error {
	switch {
	case errors.Is(err, apiclient.ErrInvalid) && strings.Contains(err.Error(), "allow_tld"):
		return hinted{err, "To create the root zone or a top-level domain, add -allow-tld."}
	case errors.Is(err, syscall.ECONNREFUSED):
		return hinted{err, fmt.Sprintf("Is the control plane (anycastd control) running with api.listen at %s? Use -api or $%s for another address.", url, envAPI)}
	case errors.Is(err, apiclient.ErrUnauthorized):
		return hinted{err, fmt.Sprintf("Check the token (-token or $%s) against the control plane's api.tokens.", envToken)}
	}
	return err
}

// parseSub parses a subcommand's flags and checks the number of
// positional arguments.
func parseSub(e *env, sc *subcommand, fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	pos, err := parse(sc.command, e, fs, args)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return nil, sc.usage(ue)
		}
		return nil, err
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		want := fmt.Sprintf("%d", minArgs)
		if maxArgs != minArgs {
			want = fmt.Sprintf("%d to %d", minArgs, maxArgs)
		}
		return nil, sc.usage(usagef("want %s arguments, got %d", want, len(pos)))
	}
	return pos, nil
}

func printJSON(e *env, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

// openInput opens FILE, or standard input for "-".
func openInput(name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	f, err := os.Open(name) //nolint:gosec // the operator names the file to read
	if err != nil {
		return nil, err
	}
	return f, nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runZoneCreate(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	file := fs.String("file", "", "create from the RFC 1035 text in `FILE` (- for standard input)")
	var ns multiFlag
	fs.Var(&ns, "ns", "a name server `NAME` of a new empty zone (repeatable)")
	mbox := fs.String("mbox", "", "the SOA mailbox `NAME` of a new empty zone (default hostmaster.ZONE)")
	policy := fs.String("policy", "", "serial `policy`: increment or date (default: the control plane's serial_policy)")
	allowTLD := fs.Bool("allow-tld", false, "allow the root zone (.) or a top-level domain")
	pos, err := parseSub(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	switch {
	case *file == "" && len(ns) == 0:
		return sc.usage(usagef("want -file FILE or at least one -ns NAME"))
	case *file != "" && (len(ns) > 0 || *mbox != ""):
		return sc.usage(usagef("-file does not go with -ns or -mbox"))
	}
	cl, url, err := af.client(e)
	if err != nil {
		return sc.usage(err)
	}
	var info api.ZoneInfo
	if *file != "" {
		in, err := openInput(*file)
		if err != nil {
			return err
		}
		defer in.Close()
		info, err = cl.CreateZoneText(ctx, pos[0], in, apiclient.CreateOptions{SerialPolicy: *policy, AllowTLD: *allowTLD})
		if err != nil {
			return apiErr(url, err)
		}
	} else {
		m := *mbox
		if m == "" {
			m = "hostmaster"
		}
		req := api.CreateZone{Name: pos[0], SerialPolicy: *policy, AllowTLD: *allowTLD,
			Records: []string{fmt.Sprintf("@ 3600 IN SOA %s %s 1 7200 3600 1209600 300", ns[0], m)}}
		for _, n := range ns {
			req.Records = append(req.Records, "@ 3600 IN NS "+n)
		}
		if info, err = cl.CreateZone(ctx, req); err != nil {
			return apiErr(url, err)
		}
	}
	e.print(e.stdout, fmt.Sprintf("created zone %s: serial %d, %d records, serial policy %s\n", info.Name, info.Serial, info.Records, info.SerialPolicy))
	return nil
}

func runZoneList(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	_, cl, url, err := af.parse(e, sc, fs, args, 0, 0)
	if err != nil {
		return err
	}
	zones, err := cl.ListZones(ctx)
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, api.ZoneList{Zones: zones})
	}
	if len(zones) == 0 {
		e.print(e.stdout, "no zones\n")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ZONE\tSERIAL\tRECORDS\tPOLICY\tUPDATED") // a write error shows at Flush
	for _, z := range zones {
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", z.Name, z.Serial, z.Records, z.SerialPolicy, z.Updated.UTC().Format("2006-01-02 15:04:05Z"))
	}
	return tw.Flush()
}

func runZoneShow(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	z, err := cl.Zone(ctx, pos[0])
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, z)
	}
	e.print(e.stdout, fmt.Sprintf("zone %s  serial %d  records %d  policy %s  updated %s\n\n",
		z.Name, z.Serial, z.Records, z.SerialPolicy, z.Updated.UTC().Format("2006-01-02 15:04:05Z")))
	return writeRRsets(e.stdout, z.RRsets)
}

// writeRRsets prints records one per line in aligned columns.
func writeRRsets(w io.Writer, sets []api.RRset) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// A write error shows at Flush.
	_, _ = fmt.Fprintln(tw, "NAME\tTTL\tTYPE\tDATA")
	for _, s := range sets {
		for _, r := range s.Records {
			_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Name, s.TTL, s.Type, r)
		}
	}
	return tw.Flush()
}

func runZoneDelete(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	yes := fs.Bool("yes", false, "delete without asking")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	if !*yes {
		if !e.interactive || e.stdin == nil {
			return sc.usage(usagef("deleting zone %s takes it off every node: add -yes to confirm "+
				"(standard input is not a terminal to ask on)", pos[0]))
		}
		info, err := cl.Zone(ctx, pos[0])
		if err != nil {
			return apiErr(url, err)
		}
		e.print(e.stderr, fmt.Sprintf("Delete zone %s (serial %d, %d records) from the control plane and every node? [y/N] ",
			info.Name, info.Serial, info.Records))
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n') // no answer is no
		switch strings.ToLower(strings.TrimSpace(answer)) {
		case "y", "yes":
		default:
			return fmt.Errorf("zone %s not deleted", info.Name)
		}
	}
	if err := cl.DeleteZone(ctx, pos[0]); err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("deleted zone %s\n", pos[0]))
	return nil
}

func runZoneImport(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	allowTLD := fs.Bool("allow-tld", false, "allow the import to create the root zone (.) or a top-level domain")
	pos, cl, url, err := af.parse(e, sc, fs, args, 2, 2)
	if err != nil {
		return err
	}
	in, err := openInput(pos[1])
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := cl.ImportZone(ctx, pos[0], in, apiclient.ImportOptions{AllowTLD: *allowTLD})
	if err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("imported zone %s: serial %d, %d records\n", info.Name, info.Serial, info.Records))
	return nil
}

func runZoneExport(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	out := fs.String("o", "", "write to `FILE` instead of standard output")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *out == "" {
		return apiErr(url, cl.ExportZone(ctx, pos[0], e.stdout))
	}
	// Write beside the target and rename, so that a failed export never
	// leaves a truncated zone file behind.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".anycastctl-export-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
	if err := cl.ExportZone(ctx, pos[0], tmp); err != nil {
		tmp.Close()
		return apiErr(url, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), *out)
}
