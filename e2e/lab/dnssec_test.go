//go:build linux

package lab

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/lab"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestDNSSECRollover runs `anycastlab scenario dnssec-rollover -json` as a
// user would (issue #16): a validating unbound in every client namespace,
// anchored at the lab parent's key, resolves the signed child through the
// anycast address (each at its own PoP) while its ZSK, its KSK and then
// its algorithm (ECDSAP256SHA256 to ED25519) roll in accelerated time
// (lifetimes of seconds, TTLs of 5 s), the parent following the child's
// CDS and the DS confirmed with ds-seen. Every rollover's line must show
// queries answered throughout, each validated: no SERVFAIL, no answer
// without AD, none lost or wrong; the keys it names must have changed,
// and the KSK's DS must have gone through the parent.
func TestDNSSECRollover(t *testing.T) {
	needRoot(t)
	testkit.RequireTool(t, "unbound", "unbound")
	stateDir, id, stdout, _ := runScenario(t, "k", "dnssec-rollover", 3*time.Minute)
	got := map[string]lab.RolloverLine{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		for _, k := range []string{"scenario", "rollover", "queries", "servfail", "bogus", "duration_s"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %s has no %q", line, k)
			}
		}
		var ln lab.RolloverLine
		if err := json.Unmarshal([]byte(line), &ln); err != nil {
			t.Fatal(err)
		}
		if ln.Scenario != "dnssec-rollover" {
			t.Errorf("line %s: scenario %q", line, ln.Scenario)
		}
		if _, dup := got[ln.Rollover]; dup {
			t.Errorf("two lines for the %s rollover", ln.Rollover)
		}
		got[ln.Rollover] = ln
	}
	for _, kind := range []string{"zsk", "ksk", "algorithm"} {
		ln, ok := got[kind]
		if !ok {
			t.Errorf("no line for the %s rollover:\n%s", kind, stdout.String())
			continue
		}
		for _, f := range ln.Failures() {
			t.Error(f)
		}
		// 25 q/s from each of 3 resolvers over a rollover of ≥ 14 s
		// (publication + retirement at TTL 5 s and propagation delay
		// 2 s); a loaded machine sends fewer.
		if ln.Queries < 200 || ln.DurationS < 14 {
			t.Errorf("%s: %d queries in %.1f s, want ≥ 200 in ≥ 14 s", kind, ln.Queries, ln.DurationS)
		}
		oldKeys, newKeys, ok := strings.Cut(ln.Keys, " → ")
		switch {
		case !ok || oldKeys == "-" || newKeys == "-" || oldKeys == newKeys:
			t.Errorf("%s: keys %q, want old keys replaced by new ones", kind, ln.Keys)
		case kind == "algorithm":
			// Every key of ECDSAP256SHA256 replaced by keys of ED25519.
			if strings.Contains(oldKeys, "/ED25519") || strings.Contains(newKeys, "/ECDSAP256SHA256") ||
				!strings.Contains(newKeys, "ksk ") || !strings.Contains(newKeys, "zsk ") {
				t.Errorf("algorithm: keys %q, want the ECDSAP256SHA256 KSK and ZSK replaced by an ED25519 KSK and ZSK", ln.Keys)
			}
		case !strings.HasPrefix(oldKeys, kind+" ") || !strings.HasPrefix(newKeys, kind+" "):
			t.Errorf("%s: keys %q, want one %s replaced by another", kind, ln.Keys, kind)
		}
	}
	if ln := got["algorithm"]; ln.DSUpdates < 1 || ln.DSSeen != 1 {
		t.Errorf("algorithm: the parent's DS changed %d times, %d DS confirmed; want ≥ 1 (the new algorithm's DS in place of the old) and 1", ln.DSUpdates, ln.DSSeen)
	}
	if ln := got["ksk"]; ln.DSUpdates < 2 || ln.DSSeen != 1 {
		t.Errorf("ksk: the parent's DS changed %d times, %d DS confirmed; want 2 (new DS added, old removed) and 1", ln.DSUpdates, ln.DSSeen)
	}
	if ln := got["zsk"]; ln.DSUpdates != 0 || ln.DSSeen != 0 {
		t.Errorf("zsk: the parent's DS changed %d times, %d DS confirmed; want none (a ZSK has no DS)", ln.DSUpdates, ln.DSSeen)
	}
	if left := leftovers(id, nil); len(left) > 0 {
		t.Errorf("left after the scenario: %v", left)
	}
	if ids, _ := lab.ListLabs(stateDir); len(ids) != 0 {
		t.Errorf("labs left in %s: %v", stateDir, ids)
	}
}
