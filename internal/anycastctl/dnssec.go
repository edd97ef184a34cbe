package anycastctl

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
)

// WriteDNSSEC prints the signing of a zone (anycastctl dnssec status): the
// policy in a line, a table of the keys with their state and timing, the
// DS records to give the parent, and the next event with its time.
func WriteDNSSEC(w io.Writer, st api.DNSSECStatus, now time.Time) error {
	ew := &errWriter{w: w}
	if !st.Enabled {
		ew.printf("zone %s: not signed by the control plane (anycastctl dnssec enable %s)\n", st.Zone, st.Zone)
		return ew.err
	}
	ew.printf("zone %s: signed, serial %d, policy %s\n", st.Zone, st.Serial, st.Policy)
	if p := st.Settings; p != nil {
		keys := "KSK+ZSK"
		if p.CSK {
			keys = "CSK"
		}
		chain := "NSEC"
		if p.NSEC3 {
			chain = "NSEC3"
			if p.NSEC3OptOut {
				chain += " opt-out"
			}
		}
		ew.printf("  %s %s, %s; signatures valid %s, refreshed %s before expiry; DNSKEY TTL %s\n",
			p.Algorithm, keys, chain, p.SignatureValidity, p.SignatureRefresh, p.DNSKEYTTL)
	}
	var tb table
	tb.row("TAG", "ROLE", "ALGORITHM", "STATE", "CREATED", "PUBLISH", "ACTIVATE", "RETIRE", "REMOVE")
	opt := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return when(*t, now)
	}
	var ds []string
	for _, k := range st.Keys {
		tb.row(strconv.Itoa(int(k.Tag)), strings.ToUpper(k.Role), k.Algorithm, k.State, when(k.Created, now),
			opt(k.Publish), opt(k.Activate), opt(k.Retire), opt(k.Remove))
		if k.DS != "" {
			ds = append(ds, k.DS)
		}
	}
	tb.writeTo(ew, "  ")
	if len(ds) > 0 {
		ew.printf("DS for the parent:\n")
		for _, d := range ds {
			ew.printf("  %s\n", strings.Join(strings.Fields(d), " "))
		}
	}
	if st.Rollover != "" {
		ew.printf("rollover: %s\n", st.Rollover)
	}
	if st.NextEvent != nil {
		ew.printf("next event: %s at %s\n", st.NextEventKind, when(*st.NextEvent, now))
	} else {
		ew.printf("next event: none planned\n")
	}
	return ew.err
}
