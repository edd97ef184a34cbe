package zonesync

import "github.com/prometheus/client_golang/prometheus"

type metricsSet struct {
	transfers     *prometheus.CounterVec // type, result
	refreshes     *prometheus.CounterVec // result
	notifies      *prometheus.CounterVec // result
	persistErrors prometheus.Counter
	catalogErrors prometheus.Counter
}

func newMetrics() *metricsSet {
	return &metricsSet{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "zonesync", Name: "transfers_total",
			Help: "Zone transfers by type (axfr, ixfr; ixfr_udp: the differences in one UDP message, RFC 1995 §2) and result (ok; invalid: failed validation, the previous version kept serving; failed).",
		}, []string{"type", "result"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "zonesync", Name: "refreshes_total",
			Help: "Zone refreshes by result (unchanged, updated, failed).",
		}, []string{"result"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "zonesync", Name: "notifies_total",
			Help: "NOTIFY messages received by result (accepted, refused, notauth, formerr).",
		}, []string{"result"}),
		persistErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "zonesync", Name: "persist_errors_total",
			Help: "Failures to write or read a zone in the data directory.",
		}),
		catalogErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "zonesync", Name: "catalog_errors_total",
			Help: "Catalog zone versions rejected (members left unchanged).",
		}),
	}
}

func (ms *metricsSet) collectors() []prometheus.Collector {
	return []prometheus.Collector{ms.transfers, ms.refreshes, ms.notifies, ms.persistErrors, ms.catalogErrors}
}

var (
	zonesDesc = prometheus.NewDesc("anycastd_zonesync_zones",
		"Secondary zones by state (served; expired: past the SOA expire, answered SERVFAIL; pending: no data yet).", []string{"state"}, nil)
	expiredDesc = prometheus.NewDesc("anycastd_zonesync_zone_expired",
		"1 for each secondary zone past its SOA expire (answered SERVFAIL until a primary confirms it); other zones have no series.", []string{"zone"}, nil)
)

// zonesCollector counts the zones by state at scrape time and names the
// expired ones (a series per expired zone only: 10,000 healthy zones cost
// nothing).
type zonesCollector struct{ m *Manager }

func (c *zonesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- zonesDesc
	ch <- expiredDesc
}

func (c *zonesCollector) Collect(ch chan<- prometheus.Metric) {
	served, pending, expired := c.m.counts()
	ch <- prometheus.MustNewConstMetric(zonesDesc, prometheus.GaugeValue, float64(served), "served")
	ch <- prometheus.MustNewConstMetric(zonesDesc, prometheus.GaugeValue, float64(len(expired)), "expired")
	ch <- prometheus.MustNewConstMetric(zonesDesc, prometheus.GaugeValue, float64(pending), "pending")
	for _, name := range expired {
		ch <- prometheus.MustNewConstMetric(expiredDesc, prometheus.GaugeValue, 1, name)
	}
}
