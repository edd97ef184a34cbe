package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/fleet"
)

// joinZones is how many zones the join scenario creates through the
// control plane's API before the new PoP starts, beside the lab's file
// zone: the zones a PoP that joins must serve.
const joinZones = 5

func joinZone(i int) string { return fmt.Sprintf("join%d.example.", i) }

// join adds a PoP to the target's region of the running lab (namespace,
// link, BIRD reconfigured, as scale-out does) and starts anycastd on it
// with the configuration every PoP gets: the control plane's stream
// address and the key, nothing about this PoP on the control plane's side.
// It measures when the control plane recorded the new PoP's first
// heartbeat and when the fleet (GET /v1/fleet, polled every 10 ms) listed
// it with that heartbeat, and when the PoP answered every zone of the
// control plane at its current serial; and it checks that the control
// plane's configuration file did not change.
func (l *Lab) join(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	if l.ctl == nil {
		return nil, ErrNoControl
	}
	if !l.ctl.Stream {
		return nil, errors.New("join: the PoPs join over the stream; this lab was built without it (-stream=false)")
	}
	run := newRun("join", o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	c, err := l.Control()
	if err != nil {
		return nil, err
	}
	before, err := os.ReadFile(l.ControlConfigPath())
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}

	// Zones to serve, made through the API like an operator's.
	for i := range joinZones {
		name := joinZone(i)
		if err := c.DeleteZone(ctx, name); err != nil && !errors.Is(err, apiclient.ErrNotFound) {
			return nil, fmt.Errorf("join: delete old %s: %w", name, err)
		}
		if _, err := c.CreateZone(ctx, api.CreateZone{Name: name, Records: []string{
			"@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 60",
			"@ 3600 IN NS ns1",
			"ns1 3600 IN A 192.0.2.53",
			fmt.Sprintf("www 300 IN A 192.0.2.%d", 10+i),
		}}); err != nil {
			return nil, fmt.Errorf("join: create %s: %w", name, err)
		}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for i := range joinZones {
			if derr := c.DeleteZone(dctx, joinZone(i)); derr != nil {
				err = errors.Join(err, fmt.Errorf("join: delete %s: %w", joinZone(i), derr))
			}
		}
	}()
	zones, err := c.ListZones(ctx)
	if err != nil {
		return nil, fmt.Errorf("join: list zones: %w", err)
	}
	v, err := c.Fleet(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("join: fleet: %w", err)
	}
	// Every zone provisioned (the catalog lists new zones at most once a
	// second): what the new PoP serves is then its join alone.
	tn, _ := l.plan.node(o.Target)
	tp, err := l.newPoller(tn)
	if err != nil {
		return nil, err
	}
	for _, z := range zones {
		if _, err := tp.waitFor(ctx, z.Name, dns.TypeSOA, servesSOA(z.Serial), time.Now().Add(30*time.Second)); err != nil {
			tp.close()
			return nil, fmt.Errorf("join: %s before the join: %w", z.Name, err)
		}
	}
	tp.close()
	run.notef("%d zones on the control plane (%d made for the scenario), served by %s; %d members in the fleet before", len(zones), joinZones, tn.Name, len(v.Members))

	pop, err := l.NewPoP(tn.Region)
	if err != nil {
		return nil, err
	}
	n, err := l.AddPoP(ctx, tn.Region, pop)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if _, err := l.StartNode(n.Name); err != nil {
		return nil, err
	}
	run.notef("%s added to region %s and anycastd started; its configuration names the control plane's stream %s and key %s, nothing else of it",
		n.Name, tn.Region, l.ctl.streamAddr(), controlKeyName)

	// The fleet lists the new PoP.
	var m fleet.MemberView
	var listed time.Time
	for deadline := start.Add(30 * time.Second); ; {
		v, err := c.Fleet(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("join: fleet: %w", err)
		}
		at := time.Now()
		if mv, ok := memberOf(v, n.Name); ok && !mv.FirstHeartbeat.IsZero() {
			m, listed = mv, at
			break
		}
		if at.After(deadline) {
			return nil, fmt.Errorf("join: %s not in the fleet 30s after its start (log: %s)", n.Name, lastLines(l.NodeLog(n.Name, 20), 20))
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
	run.notef("the control plane recorded %s's first heartbeat %s after its start; the fleet listed it %s after that heartbeat (PoP %s, %s)",
		n.Name, m.FirstHeartbeat.Sub(start).Round(time.Millisecond), listed.Sub(m.FirstHeartbeat).Round(time.Millisecond), m.PoP, m.State)

	// The new PoP answers every zone at the control plane's serial, and
	// the lab's file zone.
	p, err := l.newPoller(n)
	if err != nil {
		return nil, err
	}
	defer p.close()
	served := 0
	var servedAt time.Time
	for _, z := range zones {
		at, err := p.waitFor(ctx, z.Name, dns.TypeSOA, servesSOA(z.Serial), start.Add(60*time.Second))
		if err != nil {
			run.notef("%s: %v", z.Name, err)
			continue
		}
		served++
		servedAt = maxTime(servedAt, at)
	}
	fileZone := 0
	if _, err := p.waitFor(ctx, ZoneName, dns.TypeSOA, servesSOA(0), start.Add(60*time.Second)); err == nil {
		fileZone = 1
	}
	run.notef("%s answered %d of the %d zones of the control plane at their serials %s after its start (and the lab's file zone: %v)",
		n.Name, served, len(zones), servedAt.Sub(start).Round(time.Millisecond), fileZone == 1)
	for deadline := time.Now().Add(10 * time.Second); ; {
		v, err := c.Fleet(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("join: fleet: %w", err)
		}
		m, _ = memberOf(v, n.Name)
		if m.ZonesBehind == 0 && m.ZonesMissing == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	run.notef("the fleet shows %s following %d zones, %d behind, %d missing", n.Name, m.ZonesFollowed, m.ZonesBehind, m.ZonesMissing)
	if err := l.WaitAnnounced(ctx, 20*time.Second, n.Name); err != nil {
		run.notef("%s did not announce: %v", n.Name, err)
	} else {
		run.notef("%s announces %s after its start", n.Name, time.Since(start).Round(time.Millisecond))
	}

	after, err := os.ReadFile(l.ControlConfigPath())
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	unchanged := bytes.Equal(before, after)
	run.notef("control plane configuration %s: %s (sha256 %x)", l.ControlConfigPath(), map[bool]string{true: "unchanged", false: "CHANGED"}[unchanged], sha256.Sum256(after))

	nz := len(zones)
	ln := Line{Scenario: "join", Client: l.ctl.Node, Transport: "stream", PoP: n.Name, NewPoP: n.Name,
		HeartbeatMS: ms(m.FirstHeartbeat.Sub(start)), ListedMS: ms(listed.Sub(m.FirstHeartbeat)),
		Zones: &nz, ZonesServed: &served, ControlConfigUnchanged: &unchanged}
	if served == nz {
		ln.ServedMS = ms(servedAt.Sub(start))
	}
	run.res.Lines = append(run.res.Lines, ln)
	return run.done(), nil
}

func memberOf(v fleet.View, node string) (fleet.MemberView, bool) {
	for _, m := range v.Members {
		if m.Node == node {
			return m, true
		}
	}
	return fleet.MemberView{}, false
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
