//go:build linux

package node

import (
	"cmp"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
)

// TestMetrics sends a known mix of queries and checks the Prometheus
// endpoint against it: query counts by transport, type and rcode; the
// latency histogram; zone serials; zone load errors, across a reload.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	com := filepath.Join(dir, "example.com.zone")
	broken := filepath.Join(dir, "broken.example.zone")
	writeFile(t, com, zoneText("example.com.", 2026010101))
	writeFile(t, broken, zoneText("broken.example.", 1, "x IN A not-an-address"))
	n := startNode(t, nodeOpts{dir: dir, metrics: true, args: func(p ports) []string {
		return []string{"-listen", p.DNSAddrs()[0].String(), "-metrics", p.MetricsAddr(),
			"-zone", "example.com.=" + com, "-zone", "broken.example.=" + broken}
	}})
	addr := n.addr()

	fams := n.scrape()
	for _, name := range []string{
		"anycastd_queries_total", "anycastd_response_seconds", "anycastd_zone_serial",
		"anycastd_zone_load_errors_total", "anycastd_dropped_total",
	} {
		if fams[name] == nil {
			t.Errorf("metric %s missing", name)
		}
	}
	if f := fams["anycastd_response_seconds"]; f != nil && f.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("anycastd_response_seconds is a %s, want a histogram", f.GetType())
	}
	serialOf := func(fams map[string]*dto.MetricFamily, zone string) (float64, bool) {
		return metricValue(fams, "anycastd_zone_serial", map[string]string{"zone": zone})
	}
	if v, ok := serialOf(fams, "example.com."); !ok || v != 2026010101 {
		t.Errorf("anycastd_zone_serial{zone=example.com.} = %v (present %t), want 2026010101", v, ok)
	}
	if v, ok := serialOf(fams, "broken.example."); ok {
		t.Errorf("anycastd_zone_serial{zone=broken.example.} = %v, want absent (the zone failed to load)", v)
	}
	if v, _ := metricValue(fams, "anycastd_zone_load_errors_total", map[string]string{"zone": "broken.example."}); v != 1 {
		t.Errorf("anycastd_zone_load_errors_total{zone=broken.example.} = %v, want 1", v)
	}
	if v, _ := metricValue(fams, "anycastd_zone_load_errors_total", map[string]string{"zone": "example.com."}); v != 0 {
		t.Errorf("anycastd_zone_load_errors_total{zone=example.com.} = %v, want 0", v)
	}

	// The queries, and the series each must add to.
	type series struct{ transport, qtype, rcode string }
	type send struct {
		network string
		name    string
		qtype   uint16
		class   uint16
		count   int
		want    series
	}
	sends := []send{
		{"udp", "www.example.com.", dns.TypeA, dns.ClassINET, 5, series{"udp", "A", "NOERROR"}},
		{"udp", "missing.example.com.", dns.TypeA, dns.ClassINET, 3, series{"udp", "A", "NXDOMAIN"}},
		{"udp", "www.example.org.", dns.TypeA, dns.ClassINET, 2, series{"udp", "A", "REFUSED"}},
		{"udp", "www.broken.example.", dns.TypeAAAA, dns.ClassINET, 1, series{"udp", "AAAA", "REFUSED"}},
		{"udp", "www.example.com.", dns.TypeMX, dns.ClassINET, 4, series{"udp", "MX", "NOERROR"}},
		{"udp", "www.example.com.", dns.TypeNAPTR, dns.ClassINET, 2, series{"udp", "OTHER", "NOERROR"}},
		{"tcp", "www.example.com.", dns.TypeA, dns.ClassINET, 3, series{"tcp", "A", "NOERROR"}},
		{"tcp", "example.com.", dns.TypeSOA, dns.ClassINET, 2, series{"tcp", "SOA", "NOERROR"}},
		{"tcp", "missing.example.com.", dns.TypeAAAA, dns.ClassINET, 6, series{"tcp", "AAAA", "NXDOMAIN"}},
		{"tcp", "version.bind.", dns.TypeTXT, dns.ClassCHAOS, 1, series{"tcp", "TXT", "NOERROR"}},
	}
	total := 0
	want := map[series]float64{}
	for _, s := range sends {
		for range s.count {
			r := mustExchange(t, s.network, addr, question(s.name, s.qtype, s.class))
			if got := dns.RcodeToString[r.Rcode]; got != s.want.rcode {
				t.Fatalf("%s %s over %s: rcode %s, want %s", s.name, dns.TypeToString[s.qtype], s.network, got, s.want.rcode)
			}
		}
		want[s.want] += float64(s.count)
		total += s.count
	}

	after := n.scrape()
	// Compare the increase of every series with what was sent.
	seen := map[series]bool{}
	for _, f := range []map[string]*dto.MetricFamily{fams, after} {
		for _, m := range f["anycastd_queries_total"].GetMetric() {
			var s series
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "transport":
					s.transport = lp.GetValue()
				case "qtype":
					s.qtype = lp.GetValue()
				case "rcode":
					s.rcode = lp.GetValue()
				}
			}
			seen[s] = true
		}
	}
	var keys []series
	for s := range seen {
		keys = append(keys, s)
	}
	for s := range want {
		if !seen[s] {
			keys = append(keys, s)
		}
	}
	slices.SortFunc(keys, func(a, b series) int {
		return cmp.Or(cmp.Compare(a.transport, b.transport), cmp.Compare(a.qtype, b.qtype), cmp.Compare(a.rcode, b.rcode))
	})
	var sumDelta float64
	for _, s := range keys {
		labels := map[string]string{"transport": s.transport, "qtype": s.qtype, "rcode": s.rcode}
		b, _ := metricValue(fams, "anycastd_queries_total", labels)
		a, _ := metricValue(after, "anycastd_queries_total", labels)
		sumDelta += a - b
		if a-b != want[s] {
			t.Errorf("anycastd_queries_total%v rose by %v, want %v", labels, a-b, want[s])
		}
	}
	if sumDelta != float64(total) {
		t.Errorf("anycastd_queries_total rose by %v in all, want %d", sumDelta, total)
	}

	// The histogram counts every answered query once, with cumulative
	// buckets that end at the total.
	hb, ha := histogram(t, fams), histogram(t, after)
	if d := ha.GetSampleCount() - hb.GetSampleCount(); d != uint64(total) {
		t.Errorf("anycastd_response_seconds_count rose by %d, want %d (one per answered query)", d, total)
	}
	if ha.GetSampleSum() <= hb.GetSampleSum() || math.IsNaN(ha.GetSampleSum()) {
		t.Errorf("anycastd_response_seconds_sum %v -> %v, want it to rise", hb.GetSampleSum(), ha.GetSampleSum())
	}
	var prev uint64
	bounds := ha.GetBucket()
	if len(bounds) == 0 {
		t.Fatal("anycastd_response_seconds has no buckets")
	}
	for i, bk := range bounds {
		if bk.GetCumulativeCount() < prev {
			t.Errorf("bucket le=%v count %d below the previous bucket's %d", bk.GetUpperBound(), bk.GetCumulativeCount(), prev)
		}
		if i > 0 && bk.GetUpperBound() <= bounds[i-1].GetUpperBound() {
			t.Errorf("bucket bounds not increasing: %v after %v", bk.GetUpperBound(), bounds[i-1].GetUpperBound())
		}
		prev = bk.GetCumulativeCount()
	}
	if prev > ha.GetSampleCount() {
		t.Errorf("last finite bucket %d above the count %d", prev, ha.GetSampleCount())
	}

	// Reload with a new serial; the broken zone fails again.
	writeFile(t, com, zoneText("example.com.", 2026010102))
	n.reload()
	after = n.scrape()
	if v, _ := serialOf(after, "example.com."); v != 2026010102 {
		t.Errorf("anycastd_zone_serial{zone=example.com.} = %v after reload, want 2026010102", v)
	}
	if v, _ := metricValue(after, "anycastd_zone_load_errors_total", map[string]string{"zone": "broken.example."}); v != 2 {
		t.Errorf("anycastd_zone_load_errors_total{zone=broken.example.} = %v after a reload that failed again, want 2", v)
	}
	// Fixed: served, and its serial appears.
	writeFile(t, broken, zoneText("broken.example.", 7))
	n.reload()
	after = n.scrape()
	if v, ok := serialOf(after, "broken.example."); !ok || v != 7 {
		t.Errorf("anycastd_zone_serial{zone=broken.example.} = %v (present %t) after the fix, want 7", v, ok)
	}
	if v, _ := metricValue(after, "anycastd_zone_load_errors_total", map[string]string{"zone": "broken.example."}); v != 2 {
		t.Errorf("anycastd_zone_load_errors_total{zone=broken.example.} = %v after a good reload, want still 2", v)
	}
}

// histogram returns the single anycastd_response_seconds series.
func histogram(t *testing.T, fams map[string]*dto.MetricFamily) *dto.Histogram {
	t.Helper()
	f := fams["anycastd_response_seconds"]
	if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram() == nil {
		t.Fatalf("anycastd_response_seconds: want one histogram series, got %v", f)
	}
	return f.GetMetric()[0].GetHistogram()
}
