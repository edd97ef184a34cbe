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

var zonesDesc = prometheus.NewDesc("anycastd_zonesync_zones", "Secondary zones by state (served, expired, pending: no data yet).", []string{"state"}, nil)

// zonesCollector counts the zones by state at scrape time.
type zonesCollector struct{ m *Manager }

func (c *zonesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- zonesDesc }

func (c *zonesCollector) Collect(ch chan<- prometheus.Metric) {
	served, expired, pending := c.m.counts()
	ch <- prometheus.MustNewConstMetric(zonesDesc, prometheus.GaugeValue, float64(served), "served")
	ch <- prometheus.MustNewConstMetric(zonesDesc, prometheus.GaugeValue, float64(expired), "expired")
	ch <- prometheus.MustNewConstMetric(zonesDesc, prometheus.GaugeValue, float64(pending), "pending")
}
