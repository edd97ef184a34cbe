package anycastctl

import (
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/sign"
)

// TestWriteDNSSEC: the status shows the policy, each key with its state
// and times, the DS for the parent and the next event with its time.
func TestWriteDNSSEC(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	pol := api.PolicyOf(sign.DefaultPolicy())
	retire := now.Add(48 * time.Hour)
	next := now.Add(3 * time.Hour)
	st := api.DNSSECStatus{Zone: "example.com.", Enabled: true, Serial: 42, Policy: "default", Settings: &pol,
		Keys: []api.DNSSECKey{
			{Tag: 40213, Role: "ksk", Algorithm: "ECDSAP256SHA256", State: "active", Created: now.Add(-time.Hour), DS: "example.com.\t0\tIN\tDS\t40213 13 2 AB"},
			{Tag: 1111, Role: "zsk", Algorithm: "ECDSAP256SHA256", State: "active", Created: now.Add(-time.Hour), Retire: &retire},
		},
		NextEvent: &next, NextEventKind: "signature refresh"}
	var b strings.Builder
	if err := WriteDNSSEC(&b, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"zone example.com.: signed, serial 42, policy default",
		"ECDSAP256SHA256 CSK, NSEC",
		"40213  KSK   ECDSAP256SHA256  active",
		"2026-12-09T12:00:00Z (in 2d",
		"example.com. 0 IN DS 40213 13 2 AB",
		"next event: signature refresh at 2026-12-07T15:00:00Z (in 3h",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "rollover:") {
		t.Errorf("a rollover line without a rollover:\n%s", b.String())
	}
	b.Reset()
	st.Rollover = "algorithm rollover ECDSAP256SHA256 to ED25519: 1/5 new signatures"
	if err := WriteDNSSEC(&b, st, now); err != nil || !strings.Contains(b.String(), "rollover: algorithm rollover ECDSAP256SHA256 to ED25519: 1/5 new signatures\n") {
		t.Errorf("algorithm rollover under way: %q %v", b.String(), err)
	}
	b.Reset()
	if err := WriteDNSSEC(&b, api.DNSSECStatus{Zone: "example.org."}, now); err != nil || !strings.Contains(b.String(), "not signed") {
		t.Errorf("unsigned: %q %v", b.String(), err)
	}
}
