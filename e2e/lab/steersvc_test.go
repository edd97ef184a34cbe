//go:build linux

package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/lab"
)

// runService runs a service-steering scenario with a longer budget than
// run's (steer-latency waits for the monitors three times).
func runService(t *testing.T, l *lab.Lab, name string) *lab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx, 4*time.Minute)
	defer cancel()
	r, err := l.RunScenario(ctx, name, lab.ScenarioOptions{Progress: testLog{t}, ProbeCommand: []string{anycastlabBin, "stream"}})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Log(b.String())
	// Every -json line carries what issue #14 asks of it.
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: -json line %q: %v", name, line, err)
		}
		for _, k := range []string{"scenario", "client", "answer", "expected", "queries", "ok"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: -json line without %q: %s", name, k, line)
			}
		}
		n++
	}
	if n == 0 || n != len(r.Service) {
		t.Fatalf("%s: %d -json lines for %d service lines", name, n, len(r.Service))
	}
	for _, ln := range r.Service {
		if ln.Scenario != name {
			t.Errorf("line of scenario %q in %s", ln.Scenario, name)
		}
		if !ln.OK {
			t.Errorf("%s: %s at %s (ECS %s via %s): answer %q, expected %q: %s", name, ln.Client, ln.PoP, ln.ECS, ln.Resolver, ln.Answer, ln.Expected, ln.Why)
		}
	}
	return r
}

// TestServiceSteering runs the six service-steering scenarios of issue #14
// on one steering lab (control plane, a monitor per region, the service
// endpoints in the client networks) and holds them to the bounds:
// a failing endpoint leaves every PoP's answers within 2 probe intervals +
// 1 s and returns after rise; each region's clients get their region's
// endpoint with and without ECS, with the right scope; latency follows the
// link delays; 70/30 lands within ±2 points over 10,000 subnets; answers
// leave an endpoint whose load rises; every PoP answers a subnet alike.
func TestServiceSteering(t *testing.T) {
	needRoot(t)
	l := upSteering(t, false)
	pops := len(l.NodesByRole(lab.RolePoP))

	t.Run("steer-failover", func(t *testing.T) {
		r := runService(t, l, "steer-failover")
		if len(r.Service) != pops {
			t.Fatalf("%d lines, want one per PoP (%d)", len(r.Service), pops)
		}
		for _, ln := range r.Service {
			if ln.SwitchMS == nil || *ln.SwitchMS > 2000 {
				t.Errorf("%s: endpoint %s gone after %s, want within 2 probe intervals + 1 s (2000 ms)", ln.PoP, ln.Target, f(ln.SwitchMS))
			}
			if ln.RecoverMS == nil || ln.MinRecoverMS == nil || *ln.RecoverMS < *ln.MinRecoverMS {
				t.Errorf("%s: back after %s, want after rise (at least %s)", ln.PoP, f(ln.RecoverMS), f(ln.MinRecoverMS))
			}
			if strings.Contains(ln.Answer, ln.Target) {
				t.Errorf("%s answered %s while %s failed", ln.PoP, ln.Answer, ln.Target)
			}
		}
	})

	t.Run("steer-geo", func(t *testing.T) {
		r := runService(t, l, "steer-geo")
		kinds := map[string]int{}
		for _, ln := range r.Service {
			switch {
			case ln.Resolver != "":
				kinds["ecs"]++
				if ln.Resolver == ln.Client || ln.ExpectedScope != "48" {
					t.Errorf("%s via %s: ECS line must come through another region's resolver, scope 48 (got %s)", ln.Client, ln.Resolver, ln.ExpectedScope)
				}
			case ln.ECS == "":
				kinds["none"]++
				if ln.Scope != "none" {
					t.Errorf("%s without ECS: answers carried ECS scope %s", ln.Client, ln.Scope)
				}
			default:
				kinds["zero"]++
			}
		}
		if kinds["ecs"] != 3 || kinds["none"] != 3 || kinds["zero"] != 3 {
			t.Errorf("lines by kind %v, want 3 each (clients of A, B, C)", kinds)
		}
	})

	t.Run("steer-weighted", func(t *testing.T) {
		r := runService(t, l, "steer-weighted")
		if len(r.Service) != 1 {
			t.Fatalf("%d lines, want 1", len(r.Service))
		}
		ln := r.Service[0]
		if ln.Queries != 10000 || ln.Subnets != 10000 {
			t.Errorf("%d queries over %d subnets, want 10,000 each", ln.Queries, ln.Subnets)
		}
		var got []float64
		for _, s := range ln.Shares {
			got = append(got, s)
		}
		if len(got) != 2 || math.Abs(math.Max(got[0], got[1])-0.7) > 0.02 {
			t.Errorf("shares %v, want 70/30 ±2 points", ln.Shares)
		}
	})

	t.Run("steer-least-load", func(t *testing.T) {
		r := runService(t, l, "steer-least-load")
		if len(r.Service) != pops {
			t.Fatalf("%d lines, want one per PoP (%d)", len(r.Service), pops)
		}
		for _, ln := range r.Service {
			if ln.SwitchMS == nil || ln.Answer != ln.Expected || ln.Answer == ln.Target {
				t.Errorf("%s: answers %s (switch %s), want them moved off %s to %s", ln.PoP, ln.Answer, f(ln.SwitchMS), ln.Target, ln.Expected)
			}
		}
	})

	t.Run("steer-consistent", func(t *testing.T) {
		r := runService(t, l, "steer-consistent")
		for _, ln := range r.Service {
			if ln.Mismatches == nil || *ln.Mismatches != 0 || ln.Subnets < 40 {
				t.Errorf("%s: %v of %d subnets answered differently by the PoPs", ln.Client, ln.Mismatches, ln.Subnets)
			}
		}
		if len(r.Service) != len(l.NodesByRole(lab.RoleClient)) {
			t.Errorf("%d lines, want one per client", len(r.Service))
		}
	})

	t.Run("steer-latency", func(t *testing.T) {
		r := runService(t, l, "steer-latency")
		moved := 0
		for _, ln := range r.Service {
			if ln.SwitchMS != nil {
				moved++
			}
		}
		// B's clients move twice (A's endpoint → C's → A's).
		if moved != 2 {
			t.Errorf("%d lines followed a change of the link delays, want 2 (B's clients, there and back)", moved)
		}
		if len(r.Service) != 9 {
			t.Errorf("%d lines, want 9 (3 clients × 3 phases)", len(r.Service))
		}
	})
}
