package lab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"
)

// Attach opens the running lab id under stateDir from its state file, for
// status, measurements, Exec and Down from another process than the one
// that built it.
func Attach(stateDir, id string, logger *slog.Logger) (*Lab, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	st, err := ReadState(stateDir, id)
	if err != nil {
		return nil, err
	}
	if st.Topology == nil {
		return nil, fmt.Errorf("lab %s: state has no topology", id)
	}
	opts := Options{ID: id, StateDir: stateDir, Speakers: st.Speakers, Anycastd: st.Anycastd, Timing: DefaultNodeTiming,
		Bird: "bird", Birdc: "birdc", Progress: io.Discard, Logger: logger}
	p := newPlan(id, st.Topology)
	for _, a := range st.Added {
		if _, _, err := p.addPoP(a); err != nil {
			return nil, fmt.Errorf("lab %s: %w", id, err)
		}
	}
	return &Lab{
		ID: id, Dir: st.Dir, plan: p, opts: opts, start: st.Created,
		log: logger.With("component", "lab", "lab", id), state: st,
		handles: map[string]*nsHandle{}, procs: map[int]*Process{}, nodes: map[string]*Process{},
	}, nil
}

// WriteStatus prints the lab's namespaces, processes and BGP sessions.
func (l *Lab) WriteStatus(ctx context.Context, out io.Writer) error {
	w := &errWriter{w: out}
	l.mu.Lock()
	st := *l.state
	l.mu.Unlock()
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY (building, or failed: run anycastlab down)"
	}
	printf(w, "lab %s: %s, topology %q, up since %s, dir %s\n", st.ID, ready, st.Topology.Name, st.Created.Format(time.RFC3339), st.Dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	printf(tw, "NODE\tROLE\tNAMESPACE\tEXISTS\tADDRESSES"+"\n")
	for _, n := range l.plan.nodes {
		printf(tw, "%s\t%s\t%s\t%v\t%s %s\n", n.Name, n.Role, n.Namespace, namespaceExists(n.Namespace), n.Addr4, n.Addr6)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	printf(tw, "\nPROCESS\tPID\tRUNNING\tLOG"+"\n")
	for _, p := range st.Processes {
		printf(tw, "%s\t%d\t%v\t%s\n", p.Name, p.PID, p.alive(), p.Log)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.Anycastd != "" {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		printf(tw, "\nPOP\tHEALTHY\tDRAINED\tANNOUNCED\tSESSIONS (admin API on 127.0.0.1:8053 in the PoP)"+"\n")
		for _, n := range l.NodesByRole(RolePoP) {
			c, err := l.Admin(n.Name)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ns, err := c.Status(ctx)
			cancel()
			if err != nil {
				printf(tw, "%s\t-\t-\t-\t%s\n", n.Name, firstLine(err.Error()))
				continue
			}
			var sess []string
			for _, s := range ns.Sessions {
				sess = append(sess, fmt.Sprintf("%s %s bfd %s", s.Peer, s.State, s.BFD))
			}
			printf(tw, "%s\t%v\t%v\t%v\t%s\n", n.Name, ns.Healthy, ns.Drained, ns.Announced, strings.Join(sess, ", "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	printf(tw, "\nROUTER\tSESSION\tPEER\tREMOTE\tSTATE"+"\n")
	for _, r := range l.NodesByRole(RoleRouter) {
		ps, err := l.Protocols(ctx, r.Name)
		state := map[string]string{}
		for _, p := range ps {
			state[p.Name] = p.State + " " + p.Info
		}
		for _, s := range l.plan.sessions(r.Name) {
			v := state[s.Protocol]
			if err != nil {
				v = "birdc: " + firstLine(err.Error())
			}
			printf(tw, "%s\t%s\t%s AS%d\t%s\t%s\n", r.Name, s.Protocol, s.Peer, s.PeerASN, s.Remote, v)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return w.err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// RTT is one cell of an RTT matrix.
type RTT struct {
	From, To string     // node names; To may be "anycast"
	Dst      netip.Addr // address pinged
	Result   PingResult
	Err      error
}

// RTTMatrix pings, from every client, every router, PoP and other client
// and the anycast addresses, count times each, over IPv4 and IPv6.
func (l *Lab) RTTMatrix(ctx context.Context, count int) []RTT {
	var out []RTT
	for _, c := range l.NodesByRole(RoleClient) {
		type target struct {
			name string
			addr netip.Addr
		}
		var targets []target
		for _, n := range l.plan.nodes {
			if n.Name != c.Name {
				targets = append(targets, target{n.Name, n.Addr4}, target{n.Name, n.Addr6})
			}
		}
		for _, a := range l.plan.topo.Anycast {
			targets = append(targets, target{"anycast", a.Addr()})
		}
		for _, t := range targets {
			res, err := l.Ping(ctx, c.Name, t.addr, count, 20*time.Millisecond, 2*time.Second)
			out = append(out, RTT{From: c.Name, To: t.name, Dst: t.addr, Result: res, Err: err})
		}
	}
	return out
}

// WriteRTTMatrix prints an RTT matrix: min/avg in ms and answers/sent.
func WriteRTTMatrix(out io.Writer, m []RTT) error {
	w := &errWriter{w: out}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	printf(tw, "FROM\tTO\tADDRESS\tMIN ms\tAVG ms\tANSWERED"+"\n")
	for _, r := range m {
		if r.Err != nil {
			printf(tw, "%s\t%s\t%s\t-\t-\t%s\n", r.From, r.To, r.Dst, firstLine(r.Err.Error()))
			continue
		}
		printf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%d/%d\n", r.From, r.To, r.Dst,
			float64(r.Result.Min().Microseconds())/1000, float64(r.Result.Avg().Microseconds())/1000, len(r.Result.RTTs), r.Result.Sent)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return w.err
}
