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
func (l *Lab) WriteStatus(ctx context.Context, w io.Writer) error {
	l.mu.Lock()
	st := *l.state
	l.mu.Unlock()
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY (building, or failed: run anycastlab down)"
	}
	fmt.Fprintf(w, "lab %s: %s, topology %q, up since %s, dir %s\n", st.ID, ready, st.Topology.Name, st.Created.Format(time.RFC3339), st.Dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tNAMESPACE\tEXISTS\tADDRESSES")
	for _, n := range l.plan.nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s %s\n", n.Name, n.Role, n.Namespace, namespaceExists(n.Namespace), n.Addr4, n.Addr6)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPROCESS\tPID\tRUNNING\tLOG")
	for _, p := range st.Processes {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\n", p.Name, p.PID, p.alive(), p.Log)
	}
	tw.Flush()
	if st.Anycastd != "" {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nPOP\tHEALTHY\tDRAINED\tANNOUNCED\tSESSIONS (admin API on 127.0.0.1:8053 in the PoP)")
		for _, n := range l.NodesByRole(RolePoP) {
			c, err := l.Admin(n.Name)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ns, err := c.Status(ctx)
			cancel()
			if err != nil {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t%s\n", n.Name, firstLine(err.Error()))
				continue
			}
			var sess []string
			for _, s := range ns.Sessions {
				sess = append(sess, fmt.Sprintf("%s %s bfd %s", s.Peer, s.State, s.BFD))
			}
			fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%s\n", n.Name, ns.Healthy, ns.Drained, ns.Announced, strings.Join(sess, ", "))
		}
		tw.Flush()
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nROUTER\tSESSION\tPEER\tREMOTE\tSTATE")
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
			fmt.Fprintf(tw, "%s\t%s\t%s AS%d\t%s\t%s\n", r.Name, s.Protocol, s.Peer, s.PeerASN, s.Remote, v)
		}
	}
	return tw.Flush()
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
func WriteRTTMatrix(w io.Writer, m []RTT) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FROM\tTO\tADDRESS\tMIN ms\tAVG ms\tANSWERED")
	for _, r := range m {
		if r.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t%s\n", r.From, r.To, r.Dst, firstLine(r.Err.Error()))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%d/%d\n", r.From, r.To, r.Dst,
			float64(r.Result.Min().Microseconds())/1000, float64(r.Result.Avg().Microseconds())/1000, len(r.Result.RTTs), r.Result.Sent)
	}
	return tw.Flush()
}
