package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The mechanisms of the steering scenarios: a DNS blackhole on a PoP's
// upstream link, a CPU quota on a PoP's processes, and a monitor cut off
// from every PoP.

// nftName turns a node name into a part of an nftables table name.
func nftName(node string) string { return strings.ReplaceAll(node, "-", "_") }

// nftApply loads ruleset (a whole table) in the namespace of node.
func (l *Lab) nftApply(ctx context.Context, node, file, ruleset string) error {
	path := filepath.Join(l.Dir, file)
	if err := os.WriteFile(path, []byte(ruleset), 0o644); err != nil {
		return err
	}
	if out, err := l.Exec(ctx, node, "nft", "-f", path); err != nil {
		return fmt.Errorf("nft -f %s in %s: %w: %s", path, node, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nftDelete deletes table inet name in the namespace of node.
func (l *Lab) nftDelete(ctx context.Context, node, name string) error {
	if out, err := l.Exec(ctx, node, "nft", "delete", "table", "inet", name); err != nil {
		return fmt.Errorf("nft delete table inet %s in %s: %w: %s", name, node, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func blackholeTable(pop string) string { return "anycastlab_blackhole_" + nftName(pop) }

// blackholeRules is the nftables table that drops, in a PoP's router, the
// DNS queries (UDP and TCP port 53) it would forward to the PoP, to the
// anycast addresses and to the PoP's own: everything else on the link — BGP,
// BFD, the PoP's stream to the control plane, its metrics — goes on.
func (p *plan) blackholeRules(pop string) (string, error) {
	n, err := p.node(pop)
	if err != nil {
		return "", err
	}
	if n.Role != RolePoP {
		return "", fmt.Errorf("blackhole: %s is a %s, not a pop", pop, n.Role)
	}
	up := p.uplink(pop)
	if up == nil {
		return "", fmt.Errorf("blackhole: %s has no uplink", pop)
	}
	router, _, _ := up.End(up.A.Node)
	var v4, v6 []string
	for _, a := range p.topo.Anycast {
		if a.Addr().Is6() {
			v6 = append(v6, a.Addr().String())
		} else {
			v4 = append(v4, a.Addr().String())
		}
	}
	v4 = append(v4, n.Addr4.String())
	v6 = append(v6, n.Addr6.String())
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n\tchain forward {\n\t\ttype filter hook forward priority -10; policy accept;\n", blackholeTable(pop))
	fmt.Fprintf(&b, "\t\toifname %q ip daddr { %s } meta l4proto { udp, tcp } th dport %d counter drop\n", router.Ifname, strings.Join(v4, ", "), DNSPort)
	fmt.Fprintf(&b, "\t\toifname %q ip6 daddr { %s } meta l4proto { udp, tcp } th dport %d counter drop\n", router.Ifname, strings.Join(v6, ", "), DNSPort)
	b.WriteString("\t}\n}\n")
	return b.String(), nil
}

// Blackhole drops the DNS traffic a PoP's router forwards to the PoP (a
// gray failure: a broken filter upstream) while the PoP's BGP session, BFD
// and self-check stay up. RepairBlackhole ends it.
func (l *Lab) Blackhole(ctx context.Context, pop string) error {
	rules, err := l.plan.blackholeRules(pop)
	if err != nil {
		return err
	}
	router := l.plan.uplink(pop).A.Node
	return l.nftApply(ctx, router, pop+".blackhole.nft", rules)
}

// RepairBlackhole removes the blackhole of a PoP.
func (l *Lab) RepairBlackhole(ctx context.Context, pop string) error {
	if _, err := l.plan.blackholeRules(pop); err != nil {
		return err
	}
	return l.nftDelete(ctx, l.plan.uplink(pop).A.Node, blackholeTable(pop))
}

func partitionTable(vantage string) string { return "anycastlab_partition_" + nftName(vantage) }

// partitionRules drops everything from a monitor's namespace to every
// PoP's unicast addresses: the monitor sees every PoP down, and still
// reaches the control plane to say so.
func (p *plan) partitionRules(vantage string) string {
	var v4, v6 []string
	for _, n := range p.nodes {
		if n.Role == RolePoP {
			v4 = append(v4, n.Addr4.String())
			v6 = append(v6, n.Addr6.String())
		}
	}
	return fmt.Sprintf("table inet %s {\n\tchain output {\n\t\ttype filter hook output priority -10; policy accept;\n"+
		"\t\tip daddr { %s } counter drop\n\t\tip6 daddr { %s } counter drop\n\t}\n}\n",
		partitionTable(vantage), strings.Join(v4, ", "), strings.Join(v6, ", "))
}

// PartitionMonitor cuts the monitor at vantage off from every PoP (its
// reports to the control plane still go through). HealMonitor ends it.
func (l *Lab) PartitionMonitor(ctx context.Context, vantage string) error {
	m, err := l.monitor(vantage)
	if err != nil {
		return err
	}
	return l.nftApply(ctx, m.Node, vantage+".partition.nft", l.plan.partitionRules(vantage))
}

// HealMonitor ends the partition of the monitor at vantage.
func (l *Lab) HealMonitor(ctx context.Context, vantage string) error {
	m, err := l.monitor(vantage)
	if err != nil {
		return err
	}
	return l.nftDelete(ctx, m.Node, partitionTable(vantage))
}

// cgroupRoot is where the cgroup file systems are mounted.
var cgroupRoot = "/sys/fs/cgroup"

// cpuQuota is a CPU quota on the processes of a PoP's namespace: a cgroup
// of their own and the cgroups they came from.
type cpuQuota struct {
	dir    string
	v2     bool
	origin map[int]string // pid → the cgroup directory it was in
}

// ErrNoCPUController is returned when neither cgroup v1's cpu controller
// nor cgroup v2 with the cpu controller is available.
var ErrNoCPUController = errors.New("no cgroup cpu controller: want cgroup v1's at /sys/fs/cgroup/cpu or cgroup v2 at /sys/fs/cgroup with the cpu controller")

// cgroupLayout finds the cpu controller: v1 (/sys/fs/cgroup/cpu with
// cpu.cfs_quota_us) or v2 (/sys/fs/cgroup/cgroup.controllers listing cpu).
func cgroupLayout(root string) (base string, v2 bool, err error) {
	if _, err := os.Stat(filepath.Join(root, "cpu", "cpu.cfs_quota_us")); err == nil {
		return filepath.Join(root, "cpu"), false, nil
	}
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil && slices.Contains(strings.Fields(string(b)), "cpu") {
		return root, true, nil
	}
	return "", false, ErrNoCPUController
}

// cgroupOf returns the cgroup directory (under base) of pid for the cpu
// controller.
func cgroupOf(base string, v2 bool, pid int) (string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if (v2 && parts[0] == "0") || (!v2 && slices.Contains(strings.Split(parts[1], ","), "cpu")) {
			return filepath.Join(base, parts[2]), nil
		}
	}
	return "", fmt.Errorf("pid %d: no cpu cgroup in /proc/%d/cgroup", pid, pid)
}

// namespacePIDs lists the processes whose network namespace is node's.
func (l *Lab) namespacePIDs(node string) ([]int, error) {
	ns, err := l.Namespace(node)
	if err != nil {
		return nil, err
	}
	var want syscall.Stat_t
	if err := syscall.Stat(namespacePath(ns), &want); err != nil {
		return nil, fmt.Errorf("namespace of %s: %w", node, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// SetCPUQuota limits the processes of a PoP's namespace (its anycastd) to
// share of one CPU, enforced every period (cgroup v1 cpu.cfs_quota_us /
// cpu.cfs_period_us, or v2 cpu.max). A quota already set is replaced.
// ClearCPUQuota lifts it.
func (l *Lab) SetCPUQuota(pop string, share float64, period time.Duration) error {
	n, err := l.plan.node(pop)
	if err != nil {
		return err
	}
	if n.Role != RolePoP {
		return fmt.Errorf("cpu quota: %s is a %s, not a pop", pop, n.Role)
	}
	if share <= 0 || share > 64 || period < time.Millisecond || period > time.Second {
		return fmt.Errorf("cpu quota on %s: share %g of a CPU every %s: want a share in (0, 64] and a period of 1ms..1s", pop, share, period)
	}
	base, v2, err := cgroupLayout(cgroupRoot)
	if err != nil {
		return fmt.Errorf("cpu quota on %s: %w", pop, err)
	}
	l.mu.Lock()
	q := l.quotas[pop]
	l.mu.Unlock()
	if q == nil {
		q = &cpuQuota{dir: filepath.Join(base, "anycastlab-"+l.ID+"-"+pop), v2: v2, origin: map[int]string{}}
		if v2 {
			// The cpu controller must be on for the children of the root.
			_ = os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+cpu"), 0)
		}
		if err := os.Mkdir(q.dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cpu quota on %s: %w", pop, err)
		}
		if err := l.record(func(s *State) { s.Cgroups = append(s.Cgroups, q.dir) }); err != nil {
			return err
		}
		l.mu.Lock()
		l.quotas[pop] = q
		l.mu.Unlock()
	}
	periodUS := period.Microseconds()
	quotaUS := max(int64(share*float64(periodUS)), 1000)
	if v2 {
		err = os.WriteFile(filepath.Join(q.dir, "cpu.max"), []byte(fmt.Sprintf("%d %d", quotaUS, periodUS)), 0)
	} else {
		err = os.WriteFile(filepath.Join(q.dir, "cpu.cfs_period_us"), []byte(strconv.FormatInt(periodUS, 10)), 0)
		if err == nil {
			err = os.WriteFile(filepath.Join(q.dir, "cpu.cfs_quota_us"), []byte(strconv.FormatInt(quotaUS, 10)), 0)
		}
	}
	if err != nil {
		return fmt.Errorf("cpu quota on %s: %w", pop, err)
	}
	pids, err := l.namespacePIDs(pop)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return fmt.Errorf("cpu quota on %s: no process runs in its namespace", pop)
	}
	for _, pid := range pids {
		if _, ok := q.origin[pid]; !ok {
			from, err := cgroupOf(base, v2, pid)
			if err != nil {
				return fmt.Errorf("cpu quota on %s: %w", pop, err)
			}
			q.origin[pid] = from
		}
		if err := os.WriteFile(filepath.Join(q.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("cpu quota on %s: move pid %d: %w", pop, pid, err)
		}
	}
	return nil
}

// ClearCPUQuota moves a PoP's processes back where they were and removes
// its cgroup. Clearing a PoP without a quota does nothing.
func (l *Lab) ClearCPUQuota(pop string) error {
	l.mu.Lock()
	q := l.quotas[pop]
	delete(l.quotas, pop)
	l.mu.Unlock()
	if q == nil {
		return nil
	}
	var errs []error
	for pid, from := range q.origin {
		err := os.WriteFile(filepath.Join(from, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		if err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("move pid %d back to %s: %w", pid, from, err))
		}
	}
	if err := removeCgroup(q.dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("clear cpu quota on %s: %w", pop, errors.Join(errs...))
	}
	return nil
}

// removeCgroup removes a cgroup the lab made, moving whatever still runs
// in it to the root cgroup first; a cgroup already gone is fine.
func removeCgroup(dir string) error {
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for _, f := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(filepath.Dir(dir), "cgroup.procs"), []byte(f), 0) //nolint:gosec // dir is a cgroup the lab made (its state)
		}
	}
	var err error
	for range 20 { // the kernel may take a moment to let go of exited tasks
		err = syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}
