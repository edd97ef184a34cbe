package anycastctl_test

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/anycastctl"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), got)
}

var now = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func sampleStatus() admin.Status {
	return admin.Status{
		Node: "ams1", Version: "v0.4.0", Uptime: 26*time.Hour + 3*time.Minute + 4*time.Second + 500*time.Millisecond,
		Ready: true, Healthy: true,
		Checks: []admin.Check{
			{Name: "self-query 192.0.2.53", OK: true, Last: now.Add(-400 * time.Millisecond), Latency: 1250 * time.Microsecond},
			{Name: "zone freshness", OK: false, Error: "example.net. expired\n2m0s ago", Last: now.Add(-2*time.Second - 340*time.Millisecond), Latency: 3 * time.Microsecond},
			{Name: "not run yet"},
		},
		Sessions: []admin.Session{
			{Peer: netip.MustParseAddr("10.0.0.1"), ASN: 64500, State: "established", Uptime: 25 * time.Hour, BFD: "up"},
			{Peer: netip.MustParseAddr("2001:db8::1"), ASN: 4200000000, State: "active"},
		},
		Announced: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8:53::/48")},
		Level: &admin.Level{Level: level.Shed1, Source: admin.SourceControl, Reason: "load 1200 q/s above the high-water mark 1000",
			Control: &admin.LevelSetting{Level: level.Shed1, Reason: "load 1200 q/s above the high-water mark 1000", Since: now.Add(-time.Minute), Until: now.Add(2 * time.Minute)}},
		Zones: []admin.Zone{
			{Name: "example.com.", Serial: 2026031401, Records: 42, Source: "/var/lib/anycastd/example.com.zone"},
			{Name: "example.net.", Serial: 7, Records: 3, Source: "axfr 192.0.2.1:53"},
		},
	}
}

func TestWriteStatusGolden(t *testing.T) {
	drained := sampleStatus()
	drained.Drained, drained.Healthy, drained.Announced = true, false, nil
	drained.Level = &admin.Level{Level: level.Withdrawn, Source: admin.SourceDrain, Reason: "operator drain",
		Pin: &admin.LevelSetting{Level: level.Shed3, Reason: "rack\nupgrade", Since: now.Add(-5 * time.Minute)}}
	drained.Checks[0].Last = now.Add(90 * time.Minute) // the node's clock is ahead
	// A secondary zone past its SOA expire: answered SERVFAIL, the node
	// healthy and announcing all the same.
	expired := sampleStatus()
	expired.Checks = expired.Checks[:1]
	expired.Zones[1].Expired = true
	expired.Level = &admin.Level{Level: level.Normal, Source: admin.SourceDefault}
	for _, tc := range []struct {
		file string
		st   admin.Status
	}{
		{"status.golden", sampleStatus()},
		{"status_drained.golden", drained},
		{"status_empty.golden", admin.Status{}},
		{"status_expired.golden", expired},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var out bytes.Buffer
			if err := anycastctl.WriteStatus(&out, tc.st, now); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, out.Bytes())
		})
	}
}

func TestWriteDrainUndrain(t *testing.T) {
	unhealthy := sampleStatus()
	unhealthy.Healthy, unhealthy.Announced = false, nil
	withdrawn := sampleStatus()
	withdrawn.Drained, withdrawn.Announced = true, nil
	quiet := sampleStatus()
	quiet.Announced = nil
	for _, tc := range []struct {
		name  string
		drain bool
		st    admin.Status
		want  string
	}{
		{"drained", true, withdrawn, "ams1: drained; it keeps answering queries on every address\n" +
			"routes withdrawn; run anycastctl undrain to announce again\n"},
		{"drain still announcing", true, sampleStatus(), "ams1: drained; it keeps answering queries on every address\n" +
			"warning: still announcing 2 prefixes: 192.0.2.53/32 2001:db8:53::/48\n"},
		{"undrained", false, sampleStatus(), "ams1: undrained\nannouncing 192.0.2.53/32 2001:db8:53::/48\n"},
		{"undrained unhealthy", false, unhealthy, "ams1: undrained\nnot announcing until healthy; failing: zone freshness, not run yet\n"},
		{"undrained still drained", false, withdrawn, "ams1: undrained\nwarning: the node still reports itself drained\n"},
		{"undrained quiet", false, quiet, "ams1: undrained\nannouncing nothing yet (anycastctl status shows the sessions)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			write := anycastctl.WriteUndrained
			if tc.drain {
				write = anycastctl.WriteDrained
			}
			if err := write(&out, tc.st); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteLevel(t *testing.T) {
	pinned := sampleStatus()
	pinned.Level = &admin.Level{Level: level.Shed2, Source: admin.SourceOperator, Reason: "rack upgrade",
		Pin:     &admin.LevelSetting{Level: level.Shed2, Reason: "rack upgrade", Since: now.Add(-90 * time.Second)},
		Control: sampleStatus().Level.Control}
	unhealthy := pinned
	unhealthy.Level = &admin.Level{Level: level.Withdrawn, Source: admin.SourceHealth, Reason: "health check failing: [dns]", Pin: pinned.Level.Pin}
	normal := sampleStatus()
	normal.Level = &admin.Level{Level: level.Normal, Source: admin.SourceDefault}
	noBGP := admin.Status{Node: "lab1"}
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer, admin.Status) error
		st    admin.Status
	}{
		{"level_control.golden", level0, sampleStatus()},
		{"level_default.golden", level0, normal},
		{"level_no_bgp.golden", level0, noBGP},
		{"level_pinned.golden", pin(level.Shed2), pinned},
		{"level_pinned_unhealthy.golden", pin(level.Shed2), unhealthy},
		{"level_unpinned.golden", unpin, sampleStatus()},
		{"level_unpinned_still_pinned.golden", unpin, pinned},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var out bytes.Buffer
			if err := tc.write(&out, tc.st); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, out.Bytes())
		})
	}
}

func level0(b *bytes.Buffer, st admin.Status) error { return anycastctl.WriteLevel(b, st, now) }

func pin(l level.Level) func(*bytes.Buffer, admin.Status) error {
	return func(b *bytes.Buffer, st admin.Status) error { return anycastctl.WritePinned(b, st, l, now) }
}

func unpin(b *bytes.Buffer, st admin.Status) error { return anycastctl.WriteUnpinned(b, st, now) }
