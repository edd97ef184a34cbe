package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"-config FILE", `\-config FILE`},
		{`a\b`, `a\eb`},
		{".TH injected", `\&.TH injected`},
		{"'br", `\&'br`},
		{"anycastd — anycast", `anycastd \[u2014] anycast`},
		{"  .indented", "  .indented"},
	} {
		if got := escapeLine(tc.in); got != tc.want {
			t.Errorf("escapeLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The three shapes of command lists in the binaries' help.
func TestCommandNames(t *testing.T) {
	for _, tc := range []struct {
		name, prog, help string
		want             []string
	}{
		{"commands-section", "ctl", "ctl — a tool\n\nCommands:\n  status   show it\n  zone     zones\n  version  print the version\n\nRun ...\n",
			[]string{"status", "zone"}},
		{"usage-lines", "d", "d — a daemon\n\nUsage:\n  d node -config FILE   a PoP\n  d node -listen A\n  d control -config F\n  d version\n\nSignals: d reloads\n",
			[]string{"node", "control"}},
		{"usage-alternatives", "lab", "usage: lab up|down|status [flags]\nrun \"lab COMMAND -h\"\n",
			[]string{"up", "down", "status"}},
		{"none", "x", "x does one thing\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := commandNames(tc.help, tc.prog); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubcommandsAndFlags(t *testing.T) {
	help := `usage: ctl fleet [list] | revoke NODE

Subcommands:
  fleet [list] [-zone ZONE] [-json]   every member
                                      more text
  fleet revoke NODE                   close it
  ctl fleet forget NODE               drop it

Flags:
  -api URL
    	the API
  -json
    	JSON
  -token-file file
    	a file with -inline mentions
`
	if got, want := subcommandNames(help, "ctl", "fleet"), []string{"list", "revoke", "forget"}; !slices.Equal(got, want) {
		t.Errorf("subcommands %q, want %q", got, want)
	}
	if got, want := flagNames(help), []string{"-api", "-json", "-token-file"}; !slices.Equal(got, want) {
		t.Errorf("flags %q, want %q", got, want)
	}
}

// collectWith on a fake program: subcommand help is taken when it differs
// from the command's, the top help is stripped from a command's.
func TestCollectWith(t *testing.T) {
	top := "ctl — a tool\n\nCommands:\n  zone  zones\n  dig   query\n"
	helps := map[string]string{
		"-help":                top,
		"zone -help":           "usage: ctl zone list|show\n\nSubcommands:\n  zone list [-json]\n  zone show ZONE\n\nFlags:\n  -api URL\n",
		"zone list -help":      "usage: ctl zone list [-json]\n\nFlags:\n  -json\n",
		"zone show -help":      "usage: ctl zone list|show\n\nSubcommands:\n  zone list [-json]\n  zone show ZONE\n\nFlags:\n  -api URL\n",
		"dig -help":            top + "\nFlags of dig:\n  -server addr\n",
		"unexpected -argument": "",
	}
	help := func(args ...string) (string, error) {
		h, ok := helps[strings.Join(args, " ")]
		if !ok {
			return "", fmt.Errorf("unexpected run with %q", args)
		}
		return h, nil
	}
	d, err := collectWith(help, "ctl")
	if err != nil {
		t.Fatal(err)
	}
	if d.Summary != "a tool" {
		t.Errorf("summary %q", d.Summary)
	}
	var got []string
	for _, c := range d.Commands {
		got = append(got, fmt.Sprintf("%s %q %q", c.Name, c.Flags, c.Subs))
	}
	want := []string{
		`zone ["-api"] ["list" "show"]`,
		`zone list ["-json"] []`,
		`dig ["-server"] []`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(d.Commands[2].Help, "Commands:") {
		t.Errorf("dig's help repeats the top help:\n%s", d.Commands[2].Help)
	}
	if _, err := collectWith(func(...string) (string, error) { return "nothing here\n", nil }, "ctl"); err == nil {
		t.Error("a help without commands gave no error")
	}
}

// gendocs on the real binaries: man pages that groff renders without a
// warning and that hold every command's help, and a bash completion that
// completes anycastctl's commands, subcommands and flags.
func TestGenerateFromBinaries(t *testing.T) {
	bin := t.TempDir()
	for _, p := range programs {
		if _, err := testkit.Build(bin, testkit.Module+"/cmd/"+p.Name, ""); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	if err := run(context.Background(), bin, out, "1.2.3", "2026-12-07"); err != nil {
		t.Fatal(err)
	}
	groff := testkit.RequireTool(t, "groff", "groff-base")
	for _, tc := range []struct {
		page string
		want []string // in the rendered page
	}{
		{"anycastd.8", []string{"ANYCASTD(8)", "anycastd - anycast authoritative DNS", "anycastd checkzone", "-origin name", "anycastd node", "-config file", "anycastdns 1.2.3"}},
		{"anycastctl.1", []string{"ANYCASTCTL(1)", "anycastctl - the anycastdns operator CLI", "anycastctl zone create", "-allow-tld", "anycastctl fleet revoke"}},
		{"anycastlab.1", []string{"ANYCASTLAB(1)", "anycastlab up", "-topology string"}},
	} {
		t.Run(tc.page, func(t *testing.T) {
			path := filepath.Join(out, "man", tc.page)
			cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-rLL=200n", path)
			cmd.Env = append(os.Environ(), "GROFF_NO_SGR=1")
			rendered, err := cmd.Output()
			if err != nil {
				t.Fatalf("groff: %v", err)
			}
			warn, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", path).CombinedOutput()
			if len(warn) > 0 || err != nil {
				t.Errorf("groff warns about %s: %v\n%s", tc.page, err, warn)
			}
			text := stripOverstrike(string(rendered))
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("%s lacks %q", tc.page, w)
				}
			}
		})
	}

	bash := testkit.RequireTool(t, "bash", "bash")
	script := filepath.Join(out, "completion", "anycastctl")
	for _, tc := range []struct {
		line string // the words typed, the last one being completed
		want []string
	}{
		{"anycastctl ", []string{"status", "drain", "undrain", "level", "dig", "zone", "record", "pool", "dnssec", "fleet", "backup", "restore"}},
		{"anycastctl z", []string{"zone"}},
		{"anycastctl zone ", []string{"create", "list", "show", "delete", "import", "export"}},
		{"anycastctl zone c", []string{"create"}},
		{"anycastctl zone create -a", []string{"-allow-tld", "-api"}},
		{"anycastctl record set example.com www A -t", []string{"-token", "-token-file", "-ttl"}},
		{"anycastctl status -", []string{"-admin", "-json"}},
		{"anycastctl dig -s", []string{"-server"}},
		{"anycastctl fleet r", []string{"revoke"}},
		{"anycastctl nosuch -x", nil},
	} {
		t.Run("complete "+tc.line, func(t *testing.T) {
			words := strings.Split(tc.line, " ")
			var q []string
			for _, w := range words {
				q = append(q, shellQuote(w))
			}
			prog := fmt.Sprintf("source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_anycastctl\nprintf '%%s\\n' \"${COMPREPLY[@]}\"\n",
				shellQuote(script), strings.Join(q, " "), len(words)-1)
			cmd := exec.Command(bash, "--noprofile", "--norc", "-c", prog)
			cmd.Dir = t.TempDir() // no file names to complete
			outb, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, outb)
			}
			got := strings.Fields(string(outb))
			if !slices.Equal(got, tc.want) {
				t.Errorf("completions %q, want %q", got, tc.want)
			}
		})
	}
}

// stripOverstrike removes the backspace overstriking of groff's tty output
// (bold, underline).
func stripOverstrike(s string) string {
	var b []rune
	for _, r := range s {
		if r == '\b' {
			if len(b) > 0 {
				b = b[:len(b)-1]
			}
			continue
		}
		b = append(b, r)
	}
	return string(b)
}
