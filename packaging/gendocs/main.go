// Command gendocs renders the built-in help of the anycastdns binaries as
// man pages and bash completion scripts, for the Debian package (make deb).
// The help text is the one source: gendocs runs "PROG -help", finds the
// commands it lists, runs "PROG COMMAND -help" (and "PROG COMMAND SUB
// -help" for the subcommands a command lists), and writes
//
//	OUT/man/PROG.SECTION     the man page: the help texts, verbatim
//	OUT/completion/PROG      a bash completion of commands, subcommands and flags
//
// Usage: gendocs -bin DIR -out DIR [-version V] [-date YYYY-MM-DD]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// program is one binary to document.
type program struct {
	Name       string
	Section    string // man section: 8 for the daemon, 1 for the tools
	Completion bool   // write a bash completion
}

var programs = []program{
	{Name: "anycastd", Section: "8", Completion: true},
	{Name: "anycastctl", Section: "1", Completion: true},
	{Name: "anycastlab", Section: "1"},
}

func main() {
	bin := flag.String("bin", "bin", "`directory` of the built binaries")
	out := flag.String("out", "", "output `directory` (man/ and completion/ are made in it)")
	version := flag.String("version", "", "version shown in the man pages' footer")
	date := flag.String("date", time.Now().UTC().Format("2006-01-02"), "date shown in the man pages' footer")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gendocs -bin DIR -out DIR [-version V] [-date YYYY-MM-DD]")
		os.Exit(2)
	}
	if err := run(context.Background(), *bin, *out, *version, *date); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, bin, out, version, date string) error {
	for _, sub := range []string{"man", "completion"} {
		if err := os.MkdirAll(filepath.Join(out, sub), 0o755); err != nil {
			return fmt.Errorf("make output directory: %w", err)
		}
	}
	for _, p := range programs {
		doc, err := collect(ctx, filepath.Join(bin, p.Name), p.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		page := manPage(doc, p.Section, version, date)
		if err := os.WriteFile(filepath.Join(out, "man", p.Name+"."+p.Section), []byte(page), 0o644); err != nil {
			return fmt.Errorf("write man page of %s: %w", p.Name, err)
		}
		if p.Completion {
			if err := os.WriteFile(filepath.Join(out, "completion", p.Name), []byte(bashCompletion(doc)), 0o644); err != nil {
				return fmt.Errorf("write completion of %s: %w", p.Name, err)
			}
		}
	}
	return nil
}

// doc is what a program's help says.
type doc struct {
	Name     string
	Summary  string // from the first line "NAME — summary"
	Help     string // PROG -help
	Commands []command
}

// command is one command of a program (or one subcommand of a command).
type command struct {
	Name  string // "zone", or "zone create" for a subcommand
	Help  string // its -help, without the program's help when it repeats it
	Flags []string
	Subs  []string // subcommand names, for a command that has them
}

// helpFunc returns the help output of the program run with args.
type helpFunc func(args ...string) (string, error)

// collect runs the binary for its help texts.
func collect(ctx context.Context, path, name string) (doc, error) {
	help := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var b bytes.Buffer
		cmd := exec.CommandContext(ctx, path, args...) //nolint:gosec // our own binaries
		cmd.Stdout, cmd.Stderr = &b, &b
		cmd.Stdin = nil
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return "", fmt.Errorf("run %s %s: %w", path, strings.Join(args, " "), err)
		}
		return b.String(), nil // a usage on standard error with exit 1 or 2 is help all the same
	}
	return collectWith(help, name)
}

// collectWith builds the doc of the program name from its help texts.
func collectWith(help helpFunc, name string) (doc, error) {
	top, err := help("-help")
	if err != nil {
		return doc{}, err
	}
	top = strings.TrimPrefix(top, name+": unknown command \"-help\"\n")
	top = strings.TrimPrefix(top, name+": ")
	d := doc{Name: name, Help: top, Summary: summary(top, name)}
	names := commandNames(top, name)
	if len(names) == 0 {
		return doc{}, fmt.Errorf("no commands found in the output of %s -help:\n%s", name, top)
	}
	for _, c := range names {
		h, err := help(c, "-help")
		if err != nil {
			return doc{}, err
		}
		h = strings.TrimPrefix(h, top)
		cmd := command{Name: c, Help: h, Flags: flagNames(h), Subs: subcommandNames(h, name, c)}
		d.Commands = append(d.Commands, cmd)
		for _, s := range cmd.Subs {
			sh, err := help(c, s, "-help")
			if err != nil {
				return doc{}, err
			}
			if strings.TrimPrefix(sh, top) == h {
				continue // the subcommand has no help of its own
			}
			d.Commands = append(d.Commands, command{Name: c + " " + s, Help: sh, Flags: flagNames(sh)})
		}
	}
	return d, nil
}

// summary is the text after the dash of the help's first line
// "NAME — summary"; else a generic one.
func summary(help, name string) string {
	first, _, _ := strings.Cut(help, "\n")
	for _, dash := range []string{" — ", " - "} {
		if n, s, ok := strings.Cut(first, dash); ok && strings.TrimSpace(n) == name {
			return strings.TrimSpace(s)
		}
	}
	return "part of anycastdns, the anycast authoritative DNS platform"
}

var (
	wordRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	flagRE = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)`)
)

// skipCommands print something other than help.
var skipCommands = []string{"help", "version"}

// commandNames finds the commands a program's help lists: a "Commands:"
// section ("  name  what it does"), else usage lines "  PROG name ...",
// else "usage: PROG a|b|c".
func commandNames(help, prog string) []string {
	var names []string
	add := func(n string) {
		n = strings.Trim(n, "[]")
		if wordRE.MatchString(n) && !slices.Contains(names, n) && !slices.Contains(skipCommands, n) {
			names = append(names, n)
		}
	}
	lines := strings.Split(help, "\n")
	if i := slices.Index(lines, "Commands:"); i >= 0 {
		for _, l := range lines[i+1:] {
			if !strings.HasPrefix(l, "  ") {
				break
			}
			if f := strings.Fields(l); len(f) > 0 {
				add(f[0])
			}
		}
		return names
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == prog && strings.HasPrefix(l, "  ") {
			add(f[1])
		}
	}
	if len(names) > 0 {
		return names
	}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 3 && strings.EqualFold(f[0], "usage:") && f[1] == prog && strings.Contains(f[2], "|") {
			for n := range strings.SplitSeq(f[2], "|") {
				add(n)
			}
		}
	}
	return names
}

// subcommandNames finds the subcommands a command's help lists in its
// "Subcommands:" section, as lines "  CMD sub ...".
func subcommandNames(help, prog, cmd string) []string {
	var names []string
	lines := strings.Split(help, "\n")
	i := slices.Index(lines, "Subcommands:")
	if i < 0 {
		return nil
	}
	for _, l := range lines[i+1:] {
		if l == "" {
			break
		}
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == prog {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == cmd {
			n := strings.Trim(f[1], "[]")
			if wordRE.MatchString(n) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// flagNames lists the flags in the flag package's PrintDefaults format,
// "  -name ...".
func flagNames(help string) []string {
	var names []string
	for _, m := range flagRE.FindAllStringSubmatch(help, -1) {
		if !slices.Contains(names, "-"+m[1]) {
			names = append(names, "-"+m[1])
		}
	}
	sort.Strings(names)
	return names
}

// manPage renders the doc as a man(7) page: the help texts verbatim in
// no-fill blocks, one subsection a command.
func manPage(d doc, section, version, date string) string {
	var b strings.Builder
	upper := strings.ToUpper(d.Name)
	fmt.Fprintf(&b, ".\\\" Generated by packaging/gendocs from %s -help; do not edit.\n", d.Name)
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", upper, section, quoteArg(date), quoteArg("anycastdns "+version), quoteArg("anycastdns"))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", d.Name, escapeText(d.Summary))
	b.WriteString(".SH SYNOPSIS\n")
	fmt.Fprintf(&b, ".B %s\n.I COMMAND\n.RI [ flags ]\n", d.Name)
	b.WriteString(".SH DESCRIPTION\n")
	verbatim(&b, d.Help)
	if len(d.Commands) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range d.Commands {
			fmt.Fprintf(&b, ".SS %s\n", quoteArg(d.Name+" "+c.Name))
			verbatim(&b, c.Help)
		}
	}
	b.WriteString(".SH SEE ALSO\n")
	var see []string
	for _, p := range programs {
		if p.Name != d.Name {
			see = append(see, fmt.Sprintf(".BR %s (%s)", p.Name, p.Section))
		}
	}
	b.WriteString(strings.Join(see, ",\n") + "\n")
	return b.String()
}

// verbatim writes text as a no-fill block.
func verbatim(b *strings.Builder, text string) {
	text = strings.TrimRight(text, "\n")
	if strings.TrimSpace(text) == "" {
		return
	}
	b.WriteString(".PP\n.nf\n")
	for l := range strings.SplitSeq(text, "\n") {
		b.WriteString(escapeLine(l) + "\n")
	}
	b.WriteString(".fi\n")
}

// escapeText escapes text for roff: backslashes, and hyphens as the
// minus signs that options and commands need.
func escapeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r > 0x7e:
			fmt.Fprintf(&b, `\[u%04X]`, r) // troff reads ASCII; named by code point
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeLine escapes one line of text: a line that starts with a period or
// an apostrophe would be a request.
func escapeLine(l string) string {
	l = escapeText(l)
	if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
		l = `\&` + l
	}
	return l
}

// quoteArg quotes a macro argument.
func quoteArg(s string) string {
	return `"` + strings.ReplaceAll(escapeText(s), `"`, `\(dq`) + `"`
}

// bashCompletion renders a completion function for the program: its
// commands, then a command's subcommands, and the flags of the command
// (or subcommand) being typed; file names otherwise.
func bashCompletion(d doc) string {
	fn := "_" + strings.ReplaceAll(d.Name, "-", "_")
	var cmds []string
	subs := map[string][]string{}
	for _, c := range d.Commands {
		if name, sub, ok := strings.Cut(c.Name, " "); ok {
			subs[name] = append(subs[name], sub)
			continue
		}
		cmds = append(cmds, c.Name)
		if len(c.Subs) > 0 {
			subs[c.Name] = c.Subs
		}
	}
	for _, c := range d.Commands {
		if len(c.Subs) > 0 {
			subs[c.Name] = c.Subs // the order of the help
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s. Generated by packaging/gendocs from %s -help; do not edit.\n", d.Name, d.Name)
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("    local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]} sub=\n")
	b.WriteString("    COMPREPLY=()\n")
	b.WriteString("    if [[ $COMP_CWORD -eq 1 ]]; then\n")
	fmt.Fprintf(&b, "        COMPREPLY=($(compgen -W %s -- \"$cur\"))\n", shellQuote(strings.Join(cmds, " ")))
	b.WriteString("        return\n    fi\n")
	b.WriteString("    case $cmd in\n")
	for _, c := range cmds {
		if s := subs[c]; len(s) > 0 {
			fmt.Fprintf(&b, "    %s)\n", c)
			b.WriteString("        if [[ $COMP_CWORD -eq 2 && $cur != -* ]]; then\n")
			fmt.Fprintf(&b, "            COMPREPLY=($(compgen -W %s -- \"$cur\"))\n", shellQuote(strings.Join(s, " ")))
			b.WriteString("            return\n        fi\n")
			b.WriteString("        sub=${COMP_WORDS[2]} ;;\n")
		}
	}
	b.WriteString("    esac\n")
	b.WriteString("    if [[ $cur == -* ]]; then\n")
	b.WriteString("        local flags=\n")
	b.WriteString("        case \"$cmd $sub\" in\n")
	for _, c := range d.Commands {
		name, sub, _ := strings.Cut(c.Name, " ")
		flags := c.Flags
		if sub != "" {
			// A subcommand takes its own flags; the command's apply too.
			for _, p := range d.Commands {
				if p.Name == name {
					flags = union(flags, p.Flags)
				}
			}
		}
		if len(flags) == 0 {
			continue
		}
		fmt.Fprintf(&b, "        %s) flags=%s ;;\n", shellQuote(name+" "+sub), shellQuote(strings.Join(flags, " ")))
	}
	b.WriteString("        esac\n")
	b.WriteString("        COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n")
	b.WriteString("        return\n    fi\n")
	b.WriteString("    COMPREPLY=($(compgen -f -- \"$cur\"))\n")
	b.WriteString("}\n")
	fmt.Fprintf(&b, "complete -o filenames -F %s %s\n", fn, d.Name)
	return b.String()
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// shellQuote quotes s for bash in single quotes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
