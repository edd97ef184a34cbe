package fleet

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

var (
	membersDesc = prometheus.NewDesc("anycastd_fleet_members",
		"Members of the fleet by state (connected, disconnected, revoked).", []string{"state"}, nil)
	connectedDesc = prometheus.NewDesc("anycastd_fleet_connected",
		"1 while the member's stream is open, else 0.", []string{"node", "pop"}, nil)
	heartbeatAgeDesc = prometheus.NewDesc("anycastd_fleet_heartbeat_age_seconds",
		"Seconds since the member's last heartbeat (it keeps growing while the member is away).", []string{"node", "pop"}, nil)
	serialLagDesc = prometheus.NewDesc("anycastd_fleet_serial_lag",
		"The largest number of serials (RFC 1982 difference) by which a zone of the member is behind the control plane.", []string{"node", "pop"}, nil)
	zonesBehindDesc = prometheus.NewDesc("anycastd_fleet_zones_behind",
		"Zones of the member behind the control plane (or without data), and zones of the catalog it does not follow yet.", []string{"node", "pop"}, nil)
	lagSecondsDesc = prometheus.NewDesc("anycastd_fleet_lag_seconds",
		"Age of the oldest change pushed to the member and not yet acknowledged (0 when it is current).", []string{"node", "pop"}, nil)
)

// Collector returns the registry's Prometheus collector: gauges computed
// at scrape time.
func (r *Registry) Collector() prometheus.Collector { return collector{r} }

type collector struct{ r *Registry }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{membersDesc, connectedDesc, heartbeatAgeDesc, serialLagDesc, zonesBehindDesc, lagSecondsDesc,
		popLevelDesc, monitorAgeDesc} {
		ch <- d
	}
	c.r.met.reports.Describe(ch)
	c.r.met.changes.Describe(ch)
	c.r.met.steps.Describe(ch)
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.r.View(ctx, "")
	if err != nil {
		c.r.log.Warn("fleet metrics: no view", "err", err)
		return
	}
	states := map[string]int{StateConnected: 0, StateDisconnected: 0, StateRevoked: 0}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, m := range v.Members {
		states[m.State]++
		if m.PoP == "" && m.State == StateRevoked && m.FirstSeen.IsZero() {
			continue // revoked before it was ever seen
		}
		connected := 0.0
		if m.State == StateConnected {
			connected = 1
		}
		gauge(connectedDesc, connected, m.Node, m.PoP)
		if m.HeartbeatAgeSeconds != nil {
			gauge(heartbeatAgeDesc, *m.HeartbeatAgeSeconds, m.Node, m.PoP)
		}
		gauge(serialLagDesc, float64(m.MaxSerialLag), m.Node, m.PoP)
		gauge(zonesBehindDesc, float64(m.ZonesBehind+m.ZonesMissing), m.Node, m.PoP)
		gauge(lagSecondsDesc, m.LagSeconds, m.Node, m.PoP)
	}
	for s, n := range states {
		gauge(membersDesc, float64(n), s)
	}
	for _, p := range v.PoPs {
		if l, err := level.Parse(p.Level); err == nil {
			gauge(popLevelDesc, float64(l), p.PoP)
		}
	}
	for _, m := range v.Monitors {
		gauge(monitorAgeDesc, m.AgeSeconds, m.Vantage)
	}
	c.r.met.reports.Collect(ch)
	c.r.met.changes.Collect(ch)
	if c.r.lv != nil {
		c.r.met.steps.Collect(ch)
	}
}
