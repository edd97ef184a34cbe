// Command anycastctl is the operator CLI of anycastdns: a node's status,
// drain, undrain and PoP level over its local admin API, and dig with the answering
// PoP. It only parses flags and calls into internal/admin and
// internal/anycastctl.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/anycastctl"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/version"
)

const (
	envAdmin     = "ANYCASTCTL_ADMIN"
	defaultAdmin = "127.0.0.1:8053"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now,
		stdin: os.Stdin, interactive: isTerminal(os.Stdin.Fd())})
	stop()
	os.Exit(code)
}

// env is what the commands need from the process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	http           *http.Client // nil = the admin client's default
	// stdin is where answers to questions come from when interactive
	// (standard input is a terminal); nil is no input.
	stdin       io.Reader
	interactive bool
}

// print writes s to w; there is nothing to do when stdout or stderr fail.
func (e *env) print(w io.Writer, s string) { _, _ = io.WriteString(w, s) }

// command is one subcommand. To add one, add an entry to commands.
type command struct {
	name     string
	args     string // synopsis after the name
	summary  string
	describe string // more help, optional
	run      func(ctx context.Context, e *env, c *command, args []string) error
}

// commands is the command table, in the order of the usage text. A command
// has its own flag set, parsed with parse; it returns usageError for
// command-line mistakes (exit 2) and any other error for failures (exit 1).
// Commands over the control plane's API (zones, records) belong here too.
func commands() []*command {
	return []*command{
		{
			name: "status", args: "[-admin ADDR] [-json]",
			summary:  "show a node's health checks, PoP level, BGP sessions, announced prefixes and zones",
			describe: "The node is asked over its local admin API (config admin.listen).",
			run:      runStatus,
		},
		{
			name: "drain", args: "[-admin ADDR]",
			summary: "withdraw a node's anycast routes; it keeps answering queries",
			describe: "The drain holds, whatever the node's health, until undrain. Traffic moves to\n" +
				"other PoPs as the routers converge; watch it with anycastctl dig -count 0.",
			run: runDrain,
		},
		{
			name: "undrain", args: "[-admin ADDR]",
			summary: "end a drain: announce again while the node is healthy",
			run:     runUndrain,
		},
		{
			name: "level", args: "[-admin ADDR] [LEVEL [-reason TEXT] | -unpin]",
			summary: "show a node's PoP level, pin it for maintenance, or unpin it",
			describe: "LEVEL is one of " + strings.Join(level.Names, ", ") + ". shed-N announces the anycast\n" +
				"prefixes with the attributes of bgp.levels.shed-N (by default N more copies of the\n" +
				"node's AS in the path), so that part of the PoP's catchment moves to other PoPs;\n" +
				"withdrawn announces nothing. A pin overrides the level the control plane sets from\n" +
				"the monitors' view until -unpin (or a restart); the node's own health and a drain\n" +
				"still withdraw whatever the pin. Without LEVEL or -unpin the level is shown.",
			run: runLevel,
		},
		{
			name: "dig", args: "[-server ADDR[:PORT]] [-tcp] [-count N] [-interval D] [-timeout D] NAME [TYPE]",
			summary: "query a DNS server and show which PoP answered (NSID) and the round-trip time",
			describe: "The server is 127.0.0.1 port 53, where a PoP serves, unless -server says otherwise;\n" +
				"anycastd standalone (make run) serves on 127.0.0.1:5353. The query asks for the EDNS\n" +
				"NSID option (RFC 5001) and has RD clear. A truncated UDP answer is asked again over\n" +
				"TCP. With -count N other than 1, dig prints a line per query and a summary of\n" +
				"answers per PoP, which shows anycast failover as it happens; -count 0 runs until\n" +
				"interrupted.",
			run: runDig,
		},
		zoneCommand(), recordCommand(), poolCommand(), dnssecCommand(), fleetCommand(), backupCommand(), restoreCommand(),
		{
			name: "version", summary: "print the version",
			run: runVersion,
		},
	}
}

func (c *command) synopsis() string {
	return strings.TrimSpace("anycastctl " + c.name + " " + c.args)
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run runs the command line args and returns the exit code: 0, 1 on
// failure, 2 on a usage error.
func run(ctx context.Context, args []string, e *env) int {
	cmds := commands()
	if len(args) == 0 {
		e.print(e.stderr, usageText(cmds))
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		e.print(e.stdout, usageText(cmds))
		return 0
	case "help":
		if len(args) == 1 {
			e.print(e.stdout, usageText(cmds))
			return 0
		}
		name, args = args[1], []string{args[1], "-help"}
	}
	var c *command
	for _, x := range cmds {
		if x.name == name {
			c = x
		}
	}
	if c == nil {
		e.print(e.stderr, fmt.Sprintf("anycastctl: unknown command %q\nRun 'anycastctl --help' for the commands.\n", name))
		return 2
	}
	err := c.run(ctx, e, c, args[1:])
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelped):
		return 0
	case errors.As(err, &ue):
		e.print(e.stderr, fmt.Sprintf("anycastctl %s: %v\nusage: %s\nRun 'anycastctl %s -help' for details.\n",
			c.name, err, c.synopsis(), c.name))
		return 2
	}
	msg := fmt.Sprintf("anycastctl: %v\n", err)
	var h hinted
	if errors.As(err, &h) {
		msg += h.hint + "\n"
	}
	e.print(e.stderr, msg)
	return 1
}

func usageText(cmds []*command) string {
	var b strings.Builder
	b.WriteString("anycastctl — the anycastdns operator CLI\n\nUsage:\n  anycastctl COMMAND [flags] [args]\n\nCommands:\n")
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintf(&b, "\nRun 'anycastctl COMMAND -help' for a command's flags.\n"+
		"The admin address defaults to $%s, else %s.\n"+
		"Exit status: 0 success, 1 failure, 2 usage error.\n", envAdmin, defaultAdmin)
	return b.String()
}

func commandHelp(c *command, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\n%s.\n", c.synopsis(), upperFirst(c.summary))
	if c.describe != "" {
		fmt.Fprintf(&b, "\n%s\n", c.describe)
	}
	var has bool
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		b.WriteString("\nFlags:\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parse parses flags, also after positional arguments (dig NAME -tcp), and
// returns the positional ones. -help prints the command's help.
func parse(c *command, e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.print(e.stdout, commandHelp(c, fs))
				return nil, errHelped
			}
			return nil, usageError{err}
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// errHelped: the help was printed, exit 0.
var errHelped = errors.New("help printed")

func adminFlag(fs *flag.FlagSet, e *env) *string {
	def := e.getenv(envAdmin)
	if def == "" {
		def = defaultAdmin
	}
	return fs.String("admin", def, "the node's admin API `address` (host:port or URL; $"+envAdmin+")")
}

func noArgs(pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	return nil
}

// hinted is an error with advice for the operator, printed on a line of
// its own.
type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

// adminErr adds a hint to an error reaching the admin API.
func adminErr(addr string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return hinted{err, fmt.Sprintf("Is anycastd running here with admin.listen set to %s? Use -admin or $%s for another address.", addr, envAdmin)}
	}
	return err
}

func runStatus(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	addr := adminFlag(fs, e)
	asJSON := fs.Bool("json", false, "print the status as JSON, as the admin API gives it")
	pos, err := parse(c, e, fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	st, err := admin.NewClient(*addr, e.http).Status(ctx)
	if err != nil {
		return adminErr(*addr, err)
	}
	if *asJSON {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	return anycastctl.WriteStatus(e.stdout, st, e.now())
}

func runDrain(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	addr := adminFlag(fs, e)
	pos, err := parse(c, e, fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	st, err := admin.NewClient(*addr, e.http).Drain(ctx)
	if err != nil {
		return adminErr(*addr, err)
	}
	return anycastctl.WriteDrained(e.stdout, st)
}

func runUndrain(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	addr := adminFlag(fs, e)
	pos, err := parse(c, e, fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	st, err := admin.NewClient(*addr, e.http).Undrain(ctx)
	if err != nil {
		return adminErr(*addr, err)
	}
	return anycastctl.WriteUndrained(e.stdout, st)
}

func runLevel(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	addr := adminFlag(fs, e)
	reason := fs.String("reason", "", "why the level is pinned, for the node's log and status (one line, at most 200 bytes)")
	unpin := fs.Bool("unpin", false, "remove the pin: the control plane's level applies again, else normal")
	pos, err := parse(c, e, fs, args)
	if err != nil {
		return err
	}
	reasonSet := false
	fs.Visit(func(f *flag.Flag) { reasonSet = reasonSet || f.Name == "reason" })
	switch {
	case len(pos) > 1:
		return usagef("unexpected argument %q", pos[1])
	case *unpin && len(pos) == 1:
		return usagef("-unpin takes no LEVEL, got %q", pos[0])
	case reasonSet && len(pos) == 0:
		return usagef("-reason goes with a LEVEL to pin")
	}
	if err := admin.CheckReason(*reason); err != nil {
		return usagef("-reason: %v", err)
	}
	cl := admin.NewClient(*addr, e.http)
	switch {
	case *unpin:
		st, err := cl.UnpinLevel(ctx)
		if err != nil {
			return adminErr(*addr, err)
		}
		return anycastctl.WriteUnpinned(e.stdout, st, e.now())
	case len(pos) == 1:
		l, err := level.Parse(pos[0])
		if err != nil {
			return usageError{err}
		}
		st, err := cl.PinLevel(ctx, l, *reason)
		if err != nil {
			return adminErr(*addr, err)
		}
		return anycastctl.WritePinned(e.stdout, st, l, e.now())
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return adminErr(*addr, err)
	}
	return anycastctl.WriteLevel(e.stdout, st, e.now())
}

func runDig(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	server := fs.String("server", anycastctl.DefaultServer, "DNS server `address`: IP, host, or host:port (port 53 by default)")
	tcp := fs.Bool("tcp", false, "query over TCP (default UDP, and TCP when truncated)")
	count := fs.Int("count", 1, "number of queries; other than 1 prints one line each and a per-PoP summary; 0 = until interrupted")
	interval := fs.Duration("interval", time.Second, "time between repeated queries")
	timeout := fs.Duration("timeout", 2*time.Second, "time to wait for each answer")
	pos, err := parse(c, e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("want NAME [TYPE], got %d arguments", len(pos))
	}
	typ := ""
	if len(pos) == 2 {
		typ = pos[1]
	}
	q, err := anycastctl.ParseQuestion(pos[0], typ)
	if err != nil {
		return usageError{err}
	}
	srv, err := anycastctl.ServerAddr(*server)
	if err != nil {
		return usageError{fmt.Errorf("-server: %w", err)}
	}
	switch {
	case *count < 0:
		return usagef("-count must be 0 or more, got %d", *count)
	case *interval < 0:
		return usagef("-interval must not be negative, got %s", *interval)
	case *timeout <= 0:
		return usagef("-timeout must be positive, got %s", *timeout)
	}
	opts := anycastctl.DigOptions{Server: srv, TCP: *tcp, Timeout: *timeout}
	if *count != 1 {
		return digErr(srv, anycastctl.Repeat(ctx, e.stdout, opts, q, *count, *interval))
	}
	r, err := anycastctl.Query(ctx, opts, q)
	if err != nil {
		return digErr(srv, err)
	}
	return anycastctl.WriteReply(e.stdout, srv, q, r)
}

// digErr adds advice to a failed query, such as one to a port nothing
// listens on.
func digErr(server string, err error) error {
	if h := anycastctl.Hint(server, err); h != "" {
		return hinted{err, h}
	}
	return err
}

func runVersion(_ context.Context, e *env, c *command, args []string) error {
	pos, err := parse(c, e, flag.NewFlagSet(c.name, flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, "anycastctl", version.Get())
	return err
}
