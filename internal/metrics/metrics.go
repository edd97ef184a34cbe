// Package metrics exposes the Prometheus metrics of the node and of the
// control plane. Query counters are kept lock-free by the DNS workers and
// read here at scrape time, so the query path never touches the Prometheus
// client. Every role's registry has anycastd_build_info.
package metrics

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/httpserve"
	"github.com/anycastdns/anycastdns/internal/version"
	"github.com/anycastdns/anycastdns/internal/zone"
)

const ns = "anycastd"

// Node holds the registry of a node.
type Node struct {
	Registry   *prometheus.Registry
	LoadErrors *prometheus.CounterVec // by zone
	Reloads    *prometheus.CounterVec // by result
}

// NewNode registers the node's collectors: queries from stats, zones from
// zones(), the served zones in any order, each origin once.
func NewNode(stats *dnsserver.Stats, zones func() []*zone.Zone) *Node {
	reg := prometheus.NewRegistry()
	n := &Node{
		Registry: reg,
		LoadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "zone_load_errors_total",
			Help: "Zone loads that failed (the previous version, if any, keeps serving).",
		}, []string{"zone"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "reloads_total", Help: "Configuration and zone reloads by result.",
		}, []string{"result"}),
	}
	reg.MustRegister(n.LoadErrors, n.Reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		BuildInfo(version.Get()),
		&queryCollector{stats: stats}, &zoneCollector{zones: zones})
	return n
}

// Control holds the registry of a control plane.
type Control struct {
	Registry *prometheus.Registry
	Reloads  *prometheus.CounterVec // by result
}

// NewControl registers the control plane's own collectors; the transfer
// server's are registered by the role once it exists.
func NewControl() *Control {
	reg := prometheus.NewRegistry()
	c := &Control{
		Registry: reg,
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "reloads_total", Help: "Configuration reloads by result (ok, config_error).",
		}, []string{"result"}),
	}
	reg.MustRegister(c.Reloads, BuildInfo(version.Get()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return c
}

// Handler returns the /metrics handler of the control plane's registry.
func (c *Control) Handler() http.Handler {
	return promhttp.HandlerFor(c.Registry, promhttp.HandlerOpts{Registry: c.Registry})
}

// BuildInfo is the anycastd_build_info gauge, always 1, whose labels say
// which build runs: version, revision (VCS, "" when not stamped) and
// goversion.
func BuildInfo(info version.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "build_info",
		Help:        "Always 1; the labels say which build of anycastd runs.",
		ConstLabels: prometheus.Labels{"version": info.Version, "revision": info.Revision, "goversion": info.GoVersion},
	})
	g.Set(1)
	return g
}

var (
	queriesDesc = prometheus.NewDesc(ns+"_queries_total", "DNS queries answered, by transport, query type and response code.",
		[]string{"transport", "qtype", "rcode"}, nil)
	droppedDesc = prometheus.NewDesc(ns+"_dropped_total", "Packets dropped without an answer (too short, responses, unanswerable).", nil, nil)
	malformDesc = prometheus.NewDesc(ns+"_malformed_total", "TCP streams cut mid-message and other framing errors.", nil, nil)
	latDesc     = prometheus.NewDesc(ns+"_response_seconds", "Time from reading a query to sending its answer.", nil, nil)
	tcpDesc     = prometheus.NewDesc(ns+"_tcp_connections", "Open TCP connections.", nil, nil)
	tcpRefDesc  = prometheus.NewDesc(ns+"_tcp_refused_total", "TCP connections closed at once without being served.", nil, nil)
	tcpEvDesc   = prometheus.NewDesc(ns+"_tcp_evicted_total", "TCP connections closed to make room for a new one (the oldest idle of its source prefix, or of all).", nil, nil)
	rrlDesc     = prometheus.NewDesc(ns+"_rrl_limited_total", "UDP answers over the response rate limit, by action: dropped or sent truncated (slip).",
		[]string{"action"}, nil)
	earlyDesc = prometheus.NewDesc(ns+"_early_drops_total", "Packets dropped before an answer was built, by reason: short, response (QR=1), class (never served), source_limit (the source prefix over limits.source.rate).",
		[]string{"reason"}, nil)
	exemptDesc  = prometheus.NewDesc(ns+"_source_exempt_total", "UDP queries from prefixes exempt from the per-source limit (limits.source.exempt).", nil, nil)
	serialDesc  = prometheus.NewDesc(ns+"_zone_serial", "SOA serial of each served zone.", []string{"zone"}, nil)
	recordsDesc = prometheus.NewDesc(ns+"_zone_records", "Records in each served zone.", []string{"zone"}, nil)
	zonesDesc   = prometheus.NewDesc(ns+"_zones", "Zones served.", nil, nil)
)

type queryCollector struct{ stats *dnsserver.Stats }

func (c *queryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queriesDesc, droppedDesc, malformDesc, latDesc, tcpDesc, tcpRefDesc, tcpEvDesc, rrlDesc, earlyDesc, exemptDesc} {
		ch <- d
	}
}

func (c *queryCollector) Collect(ch chan<- prometheus.Metric) {
	q, dropped, lat, sum := c.stats.Snapshot()
	for _, s := range q {
		ch <- prometheus.MustNewConstMetric(queriesDesc, prometheus.CounterValue, float64(s.N), s.Transport, s.Qtype, s.Rcode)
	}
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(malformDesc, prometheus.CounterValue, float64(c.stats.Malformed.Load()))
	ch <- prometheus.MustNewConstMetric(tcpDesc, prometheus.GaugeValue, float64(c.stats.TCPConns.Load()))
	ch <- prometheus.MustNewConstMetric(tcpRefDesc, prometheus.CounterValue, float64(c.stats.TCPRefuse.Load()))
	ch <- prometheus.MustNewConstMetric(tcpEvDesc, prometheus.CounterValue, float64(c.stats.TCPEvicted.Load()))
	rrlDropped, rrlSlipped := c.stats.RRL()
	ch <- prometheus.MustNewConstMetric(rrlDesc, prometheus.CounterValue, float64(rrlDropped), "drop")
	ch <- prometheus.MustNewConstMetric(rrlDesc, prometheus.CounterValue, float64(rrlSlipped), "slip")
	drops, exempt := c.stats.EarlyDrops()
	for r := dnsserver.DropNone + 1; r < dnsserver.NumDropReasons; r++ {
		ch <- prometheus.MustNewConstMetric(earlyDesc, prometheus.CounterValue, float64(drops[r]), r.String())
	}
	ch <- prometheus.MustNewConstMetric(exemptDesc, prometheus.CounterValue, float64(exempt))
	buckets := make(map[float64]uint64, len(dnsserver.LatencyBuckets))
	var cum uint64
	for i, ub := range dnsserver.LatencyBuckets {
		cum += lat[i]
		buckets[ub] = cum
	}
	cum += lat[len(lat)-1]
	ch <- prometheus.MustNewConstHistogram(latDesc, cum, sum.Seconds(), buckets)
}

type zoneCollector struct{ zones func() []*zone.Zone }

func (c *zoneCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- serialDesc
	ch <- recordsDesc
	ch <- zonesDesc
}

func (c *zoneCollector) Collect(ch chan<- prometheus.Metric) {
	// Not zone.Set.Zones: it sorts in canonical order, which the registry
	// does not need (it sorts the series itself) and which costs more than
	// the rest of a scrape with 10,000 zones.
	zones := c.zones()
	for _, z := range zones {
		ch <- prometheus.MustNewConstMetric(serialDesc, prometheus.GaugeValue, float64(z.Serial), z.Origin)
		ch <- prometheus.MustNewConstMetric(recordsDesc, prometheus.GaugeValue, float64(z.Records), z.Origin)
	}
	ch <- prometheus.MustNewConstMetric(zonesDesc, prometheus.GaugeValue, float64(len(zones)))
}

// Serve serves h, the /metrics handler and the probes, on ln until ctx is
// done. It takes ownership of ln and logs as component "metrics": logger
// must not carry a component of its own.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	return httpserve.Serve(ctx, ln, h, logger, httpserve.Options{Component: "metrics", ShutdownTimeout: 2 * time.Second})
}

// Handler returns the /metrics handler of the node's registry.
func (n *Node) Handler() http.Handler {
	return promhttp.HandlerFor(n.Registry, promhttp.HandlerOpts{Registry: n.Registry})
}
