package knotdiff

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestKdigSubnet asks Knot and anycastd the same unsteered questions with
// kdig +subnet (an outside client that builds its own ECS option) and
// compares what kdig prints of the answers: status, flags, the
// CLIENT-SUBNET line (the option echoed with scope 0) and the records.
func TestKdigSubnet(t *testing.T) {
	skipShort(t)
	kdig := testkit.RequireTool(t, "kdig", "knot-dnsutils")
	zones := testZones()
	knot := startKnot(t, zones)
	ours := startAnycastd(t, testkit.BuildAnycastd(t), zones)
	// What differs by run is left out: the ID, the timing and server
	// lines, the OPT's version line (kdig prints it twice) and the NSID.
	drop := regexp.MustCompile(`(?m)^;; (Received.*|Time.*|From.*|EDNS PSEUDOSECTION:|Version: .*|NSID: .*)$|; id: \d+`)
	for _, args := range [][]string{
		{"www.example.com.", "A", "+subnet=198.51.100.0/24"},
		{"www.example.com.", "AAAA", "+subnet=2001:db8:1:200::/56"},
		{"www.example.com.", "A", "+subnet=198.51.100.7/32"},
		{"www.example.com.", "A", "+subnet=0.0.0.0/0"},
		{"nonexistent.example.com.", "A", "+subnet=198.51.100.0/24"},
		{"www.example.com.", "A", "+subnet=198.51.100.0/24", "+tcp"},
	} {
		run := func(addr string) string {
			host, port, _ := strings.Cut(addr, ":")
			argv := append([]string{"@" + host, "-p", port, "+norec", "+nocookie", "+noall", "+header", "+opt", "+answer", "+authority"}, args...)
			out, err := exec.Command(kdig, argv...).CombinedOutput()
			if err != nil {
				t.Fatalf("kdig %s: %v\n%s", strings.Join(argv, " "), err, out)
			}
			return strings.TrimSpace(drop.ReplaceAllString(string(out), ""))
		}
		k, o := run(knot.addr.String()), run(ours.addr.String())
		if !strings.Contains(k, "CLIENT-SUBNET") {
			t.Errorf("%v: Knot did not echo the option:\n%s", args, k)
		}
		if k != o {
			t.Errorf("kdig %s differs:\nknot:\n%s\nanycastd:\n%s", strings.Join(args, " "), k, o)
		} else {
			t.Logf("kdig %s: %s", strings.Join(args, " "), strconv.Quote(k))
		}
	}
}
