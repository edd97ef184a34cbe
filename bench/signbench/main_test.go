package main

import (
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Names != 1_000_000 || o.Runs != 2 || strings.Join(o.Only, ",") != "anycastd,knot" || o.JSON {
		t.Errorf("defaults %+v", o)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-only", "nsd"}, `unknown`},
		{[]string{"-names", "99"}, "-names 99"},
		{[]string{"-runs", "0"}, "-runs 0"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		if _, err := parseFlags(tt.args, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tt.args, err, tt.want)
		}
	}
}

// TestKnotConf: knotc accepts the configuration of the Knot runs.
func TestKnotConf(t *testing.T) {
	benchkit.NeedTool(t, "knotc")
	dir := t.TempDir()
	zonePath := filepath.Join(dir, "bench.example.zone")
	if err := os.WriteFile(zonePath, []byte("@ 3600 IN SOA ns1 h 1 7200 3600 1209600 300\n@ 3600 IN NS ns1\nns1 3600 IN A 192.0.2.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k := benchkit.Knot{Dir: dir, Addr: netip.MustParseAddrPort("127.0.0.1:53535"), Origin: origin, ZonePath: zonePath, Sign: knotPolicy()}
	l, err := k.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), l.Check[0], l.Check[1:]...).CombinedOutput(); err != nil { //nolint:gosec // the test's own knotc and config
		t.Fatalf("knotc conf-check: %v\n%s", err, out)
	}
}
