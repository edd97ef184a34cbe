//go:build linux

package xfrout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const zoneName = "example.com."

// zoneText is example.com. with records of many types, a delegation with
// glue, a wildcard, a long TXT and hosts enough for a multi-message AXFR.
func zoneText(serial uint32, hosts int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `$ORIGIN example.com.
$TTL 3600
@ IN SOA ns1 hostmaster %d 3600 600 604800 300
@ IN NS ns1
@ IN NS ns2.example.net.
@ IN MX 10 mail
@ IN TXT "v=spf1 -all"
@ IN CAA 0 issue "letsencrypt.org"
ns1 IN A 192.0.2.1
ns1 IN AAAA 2001:db8::1
mail IN A 192.0.2.25
www IN CNAME web
web 300 IN A 192.0.2.80
web 300 IN AAAA 2001:db8::80
_sip._tcp IN SRV 10 60 5060 sip
sip IN A 192.0.2.50
*.wild IN TXT "wildcard"
sub IN NS ns.sub
ns.sub IN A 192.0.2.53
long IN TXT "%s" "%s"
`, serial, strings.Repeat("a", 255), strings.Repeat("b", 200))
	for i := range hosts {
		fmt.Fprintf(&b, "host%d 300 IN A 198.51.%d.%d\n", i, i/250, 1+i%250)
	}
	return b.String()
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestKnotSecondary: Knot, secondary of the server over TSIG hmac-sha256,
// follows every change of a zone in the store by NOTIFY and IXFR, and
// serves exactly the store's content after each.
func TestKnotSecondary(t *testing.T) {
	testkit.RequireTool(t, "knotd", "knot")
	ctx := t.Context()
	st := openStore(t)
	if _, err := st.CreateZoneFromText(ctx, zoneName, strings.NewReader(zoneText(2024010100, 1000)), store.SerialIncrement); err != nil {
		t.Fatal(err)
	}
	knotPort := testkit.FreePort(t)
	primary := startServer(t, st, netipAddrPort(knotPort), false)
	k := startKnot(t, knotPort, primary, []string{zoneName}, false)

	check := func(step string) {
		t.Helper()
		start := time.Now()
		want, serial := storeRecords(t, st, zoneName)
		k.waitSerial(t, zoneName, serial)
		t.Logf("%s: Knot serves serial %d %v after the check began", step, serial, time.Since(start).Round(time.Millisecond))
		if diff := cmp.Diff(want, k.axfr(t, zoneName)); diff != "" {
			t.Fatalf("%s: Knot's %s at serial %d differs from the store (-store +knot):\n%s", step, zoneName, serial, diff)
		}
	}
	check("initial transfer")
	if lines := k.logLines(zoneName, "AXFR, incoming", "finished"); len(lines) == 0 {
		t.Errorf("Knot's log shows no finished incoming AXFR of %s", zoneName)
	}

	// One change: a new RRset.
	if _, err := st.SetRRset(ctx, zoneName, "new."+zoneName, dns.TypeA, []dns.RR{mustRR(t, "new.example.com. 300 IN A 203.0.113.1")}); err != nil {
		t.Fatal(err)
	}
	check("after adding an RRset")

	// Several changes in a row: an IXFR may span several steps.
	if _, err := st.SetRRset(ctx, zoneName, zoneName, dns.TypeTXT, []dns.RR{mustRR(t, `example.com. 3600 IN TXT "v=spf1 mx -all"`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteRRset(ctx, zoneName, "host5."+zoneName, dns.TypeA); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetRRset(ctx, zoneName, "web."+zoneName, dns.TypeA, []dns.RR{
		mustRR(t, "web.example.com. 60 IN A 192.0.2.81"), mustRR(t, "web.example.com. 60 IN A 192.0.2.82"),
	}); err != nil {
		t.Fatal(err)
	}
	check("after three changes")

	// The whole zone replaced: a large difference, still incremental.
	if _, err := st.ImportZone(ctx, zoneName, strings.NewReader(zoneText(1, 600))); err != nil {
		t.Fatal(err)
	}
	check("after replacing the zone")

	// Changes made while Knot holds its refreshes back come in one IXFR
	// of several difference sequences.
	_, before := storeRecords(t, st, zoneName)
	k.control(t, "zone-freeze", zoneName)
	for i := range 3 {
		name := fmt.Sprintf("batch%d.%s", i, zoneName)
		if _, err := st.SetRRset(ctx, zoneName, name, dns.TypeAAAA, []dns.RR{mustRR(t, name+" 300 IN AAAA 2001:db8::"+fmt.Sprint(i+1))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DeleteRRset(ctx, zoneName, "host6."+zoneName, dns.TypeA); err != nil {
		t.Fatal(err)
	}
	k.control(t, "zone-thaw", zoneName)
	check("after four changes in one IXFR")
	_, after := storeRecords(t, st, zoneName)
	if jump := fmt.Sprintf("serial %d -> %d", before, after); len(k.logLines(zoneName, "zone updated", jump)) != 1 {
		t.Errorf("Knot's log shows no single update %s:\n%s", jump, strings.Join(k.logLines(zoneName, "zone updated"), "\n"))
	}

	ixfrs := k.logLines(zoneName, "IXFR, incoming", "finished")
	if len(ixfrs) < 4 {
		t.Errorf("Knot finished %d incoming IXFRs of %s, want at least 4 (one per check):\n%s", len(ixfrs), zoneName, strings.Join(ixfrs, "\n"))
	}
	if fb := k.logLines(zoneName, "fallback to AXFR"); len(fb) > 0 {
		t.Errorf("Knot fell back to AXFR:\n%s", strings.Join(fb, "\n"))
	}
	if axfrs := k.logLines(zoneName, "AXFR, incoming", "finished"); len(axfrs) != 1 {
		t.Errorf("Knot finished %d incoming AXFRs of %s, want only the initial one:\n%s", len(axfrs), zoneName, strings.Join(axfrs, "\n"))
	}
	if bad := k.logLines(zoneName, "TSIG"); len(bad) > 0 {
		for _, l := range bad {
			if strings.Contains(strings.ToLower(l), "fail") || strings.Contains(l, "BADSIG") || strings.Contains(l, "BADKEY") {
				t.Errorf("Knot reports a TSIG problem: %s", l)
			}
		}
	}
}

// TestKnotCatalog: Knot, consumer of the server's catalog zone (RFC 9432),
// starts serving zones created in the store and stops serving zones deleted
// from it, without any change to its configuration.
func TestKnotCatalog(t *testing.T) {
	testkit.RequireTool(t, "knotd", "knot")
	ctx := t.Context()
	st := openStore(t)
	for _, z := range []string{"a.example.", "b.example."} {
		if _, err := st.CreateZoneFromText(ctx, z, strings.NewReader(memberText(z, 10)), store.SerialIncrement); err != nil {
			t.Fatal(err)
		}
	}
	knotPort := testkit.FreePort(t)
	primary := startServer(t, st, netipAddrPort(knotPort), true)
	k := startKnot(t, knotPort, primary, nil, true)

	for _, z := range []string{"a.example.", "b.example."} {
		_, serial := storeRecords(t, st, z)
		k.waitSerial(t, z, serial)
	}
	// A new zone appears on Knot.
	if _, err := st.CreateZoneFromText(ctx, "c.example.", strings.NewReader(memberText("c.example.", 20)), store.SerialIncrement); err != nil {
		t.Fatal(err)
	}
	want, serial := storeRecords(t, st, "c.example.")
	k.waitSerial(t, "c.example.", serial)
	if diff := cmp.Diff(want, k.axfr(t, "c.example.")); diff != "" {
		t.Errorf("Knot's c.example. differs from the store (-store +knot):\n%s", diff)
	}
	// A deleted zone disappears from Knot.
	if err := st.DeleteZone(ctx, "a.example."); err != nil {
		t.Fatal(err)
	}
	k.waitGone(t, "a.example.")
	if _, ok := k.soa("b.example."); !ok {
		t.Error("Knot stopped serving b.example., which is still in the catalog")
	}
	// Knot followed the catalog by IXFR after its first transfer.
	if lines := k.logLines(catalog, "IXFR, incoming", "finished"); len(lines) < 2 {
		t.Errorf("Knot finished %d incoming IXFRs of the catalog, want 2 (one per membership change)", len(lines))
	}
}

// memberText is a small zone.
func memberText(name string, hosts int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n", name)
	for i := range hosts {
		fmt.Fprintf(&b, "h%d IN A 198.51.100.%d\n", i, i+1)
	}
	return b.String()
}
