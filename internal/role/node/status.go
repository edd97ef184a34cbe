package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/announce"
)

// Version is reported by the admin API; cmd/anycastd sets it.
var Version = "dev"

// Status implements admin.Backend.
func (n *Node) Status() admin.Status {
	st := admin.Status{
		Node:    n.cfg.Identity.Name,
		Version: Version,
		Ready:   isClosed(n.ready),
	}
	st.Steering = n.steering.status()
	if !n.started.IsZero() {
		st.Uptime = timeSince(n.started)
	}
	set := n.handler.Zones()
	for _, z := range set.Zones() {
		st.Zones = append(st.Zones, admin.Zone{Name: z.Origin, Serial: z.Serial, Records: z.Records, Source: z.Source, Expired: set.Expired(z)})
	}
	a := n.anycast
	if a == nil {
		st.Healthy = st.Ready
		return st
	}
	hs := a.checker.Status()
	st.Healthy = hs.Healthy
	for _, c := range hs.Checks {
		st.Checks = append(st.Checks, admin.Check{Name: c.Name, OK: c.OK, Error: c.Error, Last: c.LastRun, Latency: c.Latency})
	}
	st.Drained, _ = a.state()
	sp := a.speaker.Status()
	for _, s := range sp.Sessions {
		st.Sessions = append(st.Sessions, admin.Session{Peer: s.Peer, ASN: s.ASN, State: s.State, Uptime: s.Uptime, BFD: s.BFD})
	}
	st.Announced = sp.Announced
	lv := a.levelStatus()
	st.Level = &lv
	return st
}

// Readiness implements admin.Readier and is the /readyz of the node's HTTP
// listeners: ready once the zones are loaded and the DNS listeners answer,
// until the shutdown starts.
func (n *Node) Readiness() error {
	switch {
	case !isClosed(n.ready):
		return errors.New("loading zones and starting the DNS listeners")
	case n.stopping.Load():
		return errors.New("shutting down")
	}
	return nil
}

// Drain implements admin.Backend: withdraw and keep answering.
func (n *Node) Drain(context.Context) error {
	if n.anycast == nil {
		return fmt.Errorf("drain: this node has no BGP configured: %w", admin.ErrConflict)
	}
	n.anycast.setDrained(true)
	return nil
}

// Undrain implements admin.Backend: announce again once healthy.
func (n *Node) Undrain(context.Context) error {
	if n.anycast == nil {
		return fmt.Errorf("undrain: this node has no BGP configured: %w", admin.ErrConflict)
	}
	n.anycast.setDrained(false)
	return nil
}

// Register adds collectors to the node's metrics registry: a process that
// runs the control plane beside the node (standalone) serves its
// transfer server's metrics there.
func (n *Node) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := n.metrics.Registry.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

var (
	sessionDesc = prometheus.NewDesc("anycastd_bgp_session_established", "1 when the BGP session with the peer is established.", []string{"peer", "state"}, nil)
	bfdDesc     = prometheus.NewDesc("anycastd_bgp_bfd_up", "1 when the BFD session with the peer is up.", []string{"peer"}, nil)
	annDesc     = prometheus.NewDesc("anycastd_bgp_announced", "1 for each prefix currently announced.", []string{"prefix"}, nil)
)

// bgpCollector exposes the speaker's state at scrape time.
type bgpCollector struct{ sp *announce.Speaker }

func (c *bgpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionDesc
	ch <- bfdDesc
	ch <- annDesc
}

func (c *bgpCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.sp.Status()
	for _, s := range st.Sessions {
		v := 0.0
		if s.State == "established" {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(sessionDesc, prometheus.GaugeValue, v, s.Peer.String(), s.State)
		if s.BFD != "" {
			b := 0.0
			if s.BFD == "up" {
				b = 1
			}
			ch <- prometheus.MustNewConstMetric(bfdDesc, prometheus.GaugeValue, b, s.Peer.String())
		}
	}
	for _, p := range st.Announced {
		ch <- prometheus.MustNewConstMetric(annDesc, prometheus.GaugeValue, 1, p.String())
	}
}

func timeSince(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
