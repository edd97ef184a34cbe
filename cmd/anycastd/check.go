package main

// anycastd checkconf and anycastd checkzone: offline checks of a
// configuration file and of zone files, through the very loaders the roles
// use (internal/config, internal/zone), for operators, packaging
// (ExecStartPre, ExecReload) and CI. Like knotc conf-check and kzonecheck
// they print every problem as file:line[:column]: message and exit 0 when
// the input is valid, 1 when it is not, 2 on a usage error.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/role/node"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Exit codes of the check commands.
const (
	exitValid   = 0
	exitInvalid = 1
	exitUsage   = 2
)

// exitError carries the exit code of a check command; its message, if
// any, has already been printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode returns the process exit code for the error run returned.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

const checkconfUsage = `usage: anycastd checkconf [-role node|control|monitor] [-zones] FILE

Loads FILE as the role's configuration, exactly as the role does at start
and on SIGHUP (defaults, validation; a control plane's token file is read),
and prints every problem as FILE:LINE:COLUMN: field: message. Warnings about
a valid node configuration (what a server on the internet should not run
with) are printed too, and do not fail the check.

Without -role, the role is the one whose schema knows every top-level key
of FILE (or, when none does, all but the fewest); when that leaves more
than one, -role is required.
The standalone role takes no configuration file (only flags).

Exit status: 0 valid, 1 invalid or unreadable, 2 usage error.

Flags:
`

// checkRoles are the roles with a configuration file, in the order they
// are tried when guessing.
var checkRoles = []string{"node", "control", "monitor"}

// loadRole loads path as the configuration of role; for a valid node it
// also returns its warnings.
func loadRole(role, path string) (cfg any, warnings []string, err error) {
	switch role {
	case "node":
		n, err := config.LoadNode(path)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range n.Advice() {
			warnings = append(warnings, a.String())
		}
		return n, warnings, nil
	case "control":
		c, err := config.LoadControl(path)
		if err != nil {
			return nil, nil, err
		}
		return c, nil, nil
	case "monitor":
		m, err := config.LoadMonitor(path)
		if err != nil {
			return nil, nil, err
		}
		return m, nil, nil
	}
	return nil, nil, fmt.Errorf("unknown role %q", role)
}

// fieldErrors returns the configuration problems inside err (a joined
// error of *config.FieldError), nil when err is not one, such as a failure
// to read the file.
func fieldErrors(err error) []*config.FieldError {
	var out []*config.FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*config.FieldError); ok { //nolint:errorlint // the leaves of the joined error, not what wraps them
			out = append(out, fe)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// unknownTopLevel counts the top-level keys the role's schema does not
// know among the problems of loading a file as that role.
func unknownTopLevel(err error) int {
	n := 0
	for _, fe := range fieldErrors(err) {
		if !strings.ContainsAny(fe.Path, ".[") && strings.HasPrefix(fe.Msg, "unknown key") {
			n++
		}
	}
	return n
}

// errAmbiguous is the error of guessRole when the file does not tell
// its role: -role is required.
var errAmbiguous = errors.New("cannot tell the role")

// guessRole picks the role whose schema knows every top-level key of the
// file, loading it with each role's loader. When none knows them all, it
// picks the one that knows all but the fewest, so that a misspelt key is
// reported by the right schema. It fails when the file cannot be read, and
// with errAmbiguous when several roles fit as well.
func guessRole(path string) (string, error) {
	best, bestN := []string(nil), -1
	for _, role := range checkRoles {
		_, _, err := loadRole(role, path)
		if err != nil && !errors.Is(err, config.ErrInvalid) {
			return "", err // unreadable: the same for every role
		}
		if notDocument(err) {
			return "", err // not YAML: no schema was tried
		}
		switch n := unknownTopLevel(err); {
		case bestN < 0 || n < bestN:
			best, bestN = []string{role}, n
		case n == bestN:
			best = append(best, role)
		}
	}
	if len(best) > 1 {
		return "", fmt.Errorf("%w of %s: it could be the configuration of %s; give -role", errAmbiguous, path, strings.Join(best, " or "))
	}
	return best[0], nil
}

// notDocument reports whether the problems of a load are all about the
// document as a whole (bad YAML), before any key was read.
func notDocument(err error) bool {
	fes := fieldErrors(err)
	for _, fe := range fes {
		if fe.Path != "" {
			return false
		}
	}
	return len(fes) > 0
}

func runCheckconf(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("checkconf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "", "the `role` whose configuration FILE is: node, control or monitor (default: guessed)")
	zones := fs.Bool("zones", false, "node: also load every zone file the configuration names, as the node does")
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, checkconfUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{exitUsage}
	}
	usageErr := func(format string, args ...any) error {
		_, _ = fmt.Fprintf(stderr, "anycastd checkconf: "+format+"\n", args...)
		fs.Usage()
		return &exitError{exitUsage}
	}
	if fs.NArg() != 1 {
		return usageErr("want one configuration file, got %d arguments", fs.NArg())
	}
	path := fs.Arg(0)
	switch *role {
	case "", "node", "control", "monitor":
	case "standalone":
		return usageErr("the standalone role takes no configuration file, only flags (anycastd standalone -help)")
	default:
		return usageErr("-role %q: want node, control or monitor", *role)
	}
	if *zones && *role != "" && *role != "node" {
		return usageErr("-zones: only a node configuration names zone files")
	}
	guessed := ""
	if *role == "" {
		r, err := guessRole(path)
		if errors.Is(err, errAmbiguous) {
			return usageErr("%v", err)
		}
		if err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			if n := len(fieldErrors(err)); n > 0 {
				_, _ = fmt.Fprintf(stderr, "%s: invalid configuration: %d %s\n", path, n, plural(n, "problem"))
			}
			return &exitError{exitInvalid}
		}
		*role, guessed = r, " (role guessed from its keys)"
		if *zones && *role != "node" {
			return usageErr("-zones: %s is a %s configuration%s, which names no zone files", path, *role, guessed)
		}
	}
	cfg, warnings, err := loadRole(*role, path)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		if n := len(fieldErrors(err)); n > 0 {
			_, _ = fmt.Fprintf(stderr, "%s: invalid %s configuration%s: %d %s\n", path, *role, guessed, n, plural(n, "problem"))
		}
		return &exitError{exitInvalid}
	}
	for _, w := range warnings {
		_, _ = fmt.Fprintln(stderr, "warning: "+w)
	}
	if n, ok := cfg.(*config.Node); ok {
		// The node reads its geolocation database at start and on
		// SIGHUP; a file it cannot read fails the check as it would fail
		// the start or the reload.
		if err := node.CheckSteering(n.Steering); err != nil {
			_, _ = fmt.Fprintf(stderr, "%s: %v\n", path, err)
			return &exitError{exitInvalid}
		}
	}
	if n, ok := cfg.(*config.Node); ok && *zones {
		failed := 0
		for _, z := range n.Zones {
			if z.Secondary() {
				continue
			}
			if !checkZoneFile(z.Name, z.File, stdout, stderr) {
				failed++
			}
		}
		if failed > 0 {
			_, _ = fmt.Fprintf(stderr, "%s: %d %s failed to load\n", path, failed, plural(failed, "zone"))
			return &exitError{exitInvalid}
		}
	}
	_, _ = fmt.Fprintf(stdout, "%s: valid %s configuration\n", path, *role)
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

const checkzoneUsage = `usage: anycastd checkzone [-origin NAME] FILE...

Parses and builds each zone file exactly as a node loads it, and prints
every syntax error and every problem the zone builder finds (SOA and apex
NS, CNAME beside other data, several CNAMEs or DNAMEs, out-of-zone data,
duplicate records, missing glue, RRSIGs covering nothing, ...) as
FILE:LINE: message.

The origin is -origin, else the file's name without a ".zone" suffix (as
kzonecheck does).

Exit status: 0 every zone valid, 1 a zone invalid or unreadable, 2 usage error.

Flags:
`

func runCheckzone(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("checkzone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	origin := fs.String("origin", "", "zone `name` for every FILE (default: each file's name without .zone)")
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, checkzoneUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{exitUsage}
	}
	if fs.NArg() == 0 {
		_, _ = fmt.Fprintln(stderr, "anycastd checkzone: want at least one zone file")
		fs.Usage()
		return &exitError{exitUsage}
	}
	if *origin != "" {
		if _, err := zone.NameWire(*origin); err != nil {
			_, _ = fmt.Fprintf(stderr, "anycastd checkzone: -origin %q: %v\n", *origin, err)
			return &exitError{exitUsage}
		}
	}
	ok := true
	for _, file := range fs.Args() {
		o := *origin
		if o == "" {
			o = strings.TrimSuffix(filepath.Base(file), ".zone")
			if _, err := zone.NameWire(o); err != nil || o == "" {
				_, _ = fmt.Fprintf(stderr, "%s: no origin: the file name %q is not a zone name; give -origin\n", file, filepath.Base(file))
				ok = false
				continue
			}
		}
		if !checkZoneFile(o, file, stdout, stderr) {
			ok = false
		}
	}
	if !ok {
		return &exitError{exitInvalid}
	}
	return nil
}

// checkZoneFile loads one zone as the node does (zone.Load) and prints its
// problems to stderr, or a summary of the valid zone to stdout. It reports
// whether the zone is valid.
func checkZoneFile(origin, file string, stdout, stderr io.Writer) bool {
	origin = strings.ToLower(origin)
	if !strings.HasSuffix(origin, ".") {
		origin += "."
	}
	z, err := zone.Load(origin, file)
	if err != nil {
		problems := zoneProblems(err, origin, file)
		for _, p := range problems {
			_, _ = fmt.Fprintln(stderr, p)
		}
		_, _ = fmt.Fprintf(stderr, "%s: zone %s not valid: %d %s\n", file, origin, len(problems), plural(len(problems), "problem"))
		return false
	}
	_, _ = fmt.Fprintf(stdout, "%s: zone %s valid, serial %d, %d records\n", file, z.Origin, z.Serial, z.Records)
	return true
}

// placed matches a problem that starts with its place, "file:line:".
var placed = regexp.MustCompile(`^[^\s:]+:[0-9]+:`)

// zoneProblems splits the error of zone.Load for origin into its problems,
// one a line, each starting with a place: the builder names file:line, the
// parser file:line:column; the few about the zone as a whole (no SOA, no
// apex NS) or the file (unreadable) get the zone file's name.
func zoneProblems(err error, origin, file string) []string {
	var msgs []string
	if errors.Is(err, zone.ErrInvalid) {
		// "zone NAME: invalid zone: " + the joined problems of the builder.
		var walk func(error)
		walk = func(e error) {
			j, ok := e.(interface{ Unwrap() []error })
			if !ok {
				msgs = append(msgs, e.Error())
				return
			}
			for _, c := range j.Unwrap() {
				if c != zone.ErrInvalid { //nolint:errorlint // the sentinel itself is no problem
					walk(c)
				}
			}
		}
		walk(err)
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "zone "+origin+": ")}
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		for line := range strings.SplitSeq(m, "\n") {
			if !placed.MatchString(line) {
				line = file + ": " + line
			}
			out = append(out, line)
		}
	}
	return out
}
