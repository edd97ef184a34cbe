package xfrout

import "github.com/prometheus/client_golang/prometheus"

type metricsSet struct {
	requests       *prometheus.CounterVec // type, result
	bytes          *prometheus.CounterVec // type
	notifies       *prometheus.CounterVec // result
	notifyMessages prometheus.Counter
	connsRefused   prometheus.Counter
	connsDenied    prometheus.Counter
}

func newMetrics() *metricsSet {
	return &metricsSet{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "xfrout", Name: "requests_total",
			Help: "Requests to the transfer server by type (axfr, ixfr, soa, update, other) and result " +
				"(ok; ixfr: differences sent; uptodate: the client was current; full: IXFR answered with the whole zone; " +
				"udp: IXFR over UDP answered with the SOA; refused; notauth; formerr; notimp; failed; " +
				"prereq: an UPDATE whose prerequisites failed or that named records outside its zone).",
		}, []string{"type", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "xfrout", Name: "transfer_bytes_total",
			Help: "Bytes of DNS messages sent in AXFR and IXFR answers, by type.",
		}, []string{"type"}),
		notifies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "xfrout", Name: "notifies_total",
			Help: "NOTIFYs of one serial to one target by outcome (ok; rejected: an error answer; " +
				"failed: unanswered after every try; superseded: unanswered, then replaced by a newer serial).",
		}, []string{"result"}),
		notifyMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "xfrout", Name: "notify_messages_total",
			Help: "NOTIFY messages sent, retries included.",
		}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "xfrout", Name: "tcp_refused_total",
			Help: "TCP connections closed at once because the connection limit was reached.",
		}),
		connsDenied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "xfrout", Name: "tcp_denied_total",
			Help: "TCP connections closed at accept, before reading, because the source is in no allow_transfer prefix.",
		}),
	}
}

func (ms *metricsSet) result(typ, result string) { ms.requests.WithLabelValues(typ, result).Inc() }

func (ms *metricsSet) collectors() []prometheus.Collector {
	return []prometheus.Collector{ms.requests, ms.bytes, ms.notifies, ms.notifyMessages, ms.connsRefused, ms.connsDenied}
}

var (
	catalogSerialDesc  = prometheus.NewDesc("anycastd_xfrout_catalog_serial", "SOA serial of the catalog zone.", nil, nil)
	catalogMembersDesc = prometheus.NewDesc("anycastd_xfrout_catalog_members", "Member zones of the catalog zone.", nil, nil)
)

// catalogCollector reports the catalog at scrape time (nothing without a
// catalog).
type catalogCollector struct{ c *catalog }

func (cc *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- catalogSerialDesc
	ch <- catalogMembersDesc
}

func (cc *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	if cc.c == nil {
		return
	}
	cc.c.mu.RLock()
	z, n := cc.c.z, len(cc.c.members)
	cc.c.mu.RUnlock()
	if z == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(catalogSerialDesc, prometheus.GaugeValue, float64(z.Serial))
	ch <- prometheus.MustNewConstMetric(catalogMembersDesc, prometheus.GaugeValue, float64(n))
}
