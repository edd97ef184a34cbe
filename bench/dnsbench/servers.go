package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// serverNames lists the servers in the order they run.
var serverNames = []string{"anycastd", "nsd", "knot"}

// prepareServer writes the configuration of server name into dir.
func prepareServer(name, dir, anycastdBin string, addr netip.AddrPort, zd *zoneData) (benchkit.Launch, error) {
	switch name {
	case "anycastd":
		return prepareAnycastd(anycastdBin, addr, zd), nil
	case "nsd":
		return prepareNSD(dir, addr, zd)
	case "knot":
		return benchkit.Knot{Dir: dir, Addr: addr, Origin: zd.Origin, ZonePath: zd.ZonePath, OneWorker: true}.Prepare()
	}
	return benchkit.Launch{}, fmt.Errorf("unknown server %q", name)
}

func prepareAnycastd(bin string, addr netip.AddrPort, zd *zoneData) benchkit.Launch {
	return benchkit.Launch{
		Name: "anycastd",
		Argv: []string{bin, "node",
			"-listen", addr.String(),
			"-zone", zd.Origin + "=" + zd.ZonePath,
			"-nsid", "bench-anycastd",
			"-log-level", "warn"},
		// One P: the comparison is per core, like NSD's one server process
		// and Knot's one UDP worker.
		Env: []string{"GOMAXPROCS=1"},
	}
}

func nsdConf(dir string, addr netip.AddrPort, zd *zoneData) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n")
	for _, kv := range [][2]string{
		{"server-count", "1"},
		{"ip-address", addr.Addr().String()},
		{"port", strconv.Itoa(int(addr.Port()))},
		{"username", q("")},
		{"chroot", q("")},
		{"zonesdir", q(dir)},
		{"pidfile", q(filepath.Join(dir, "nsd.pid"))},
		{"database", q("")},
		{"zonelistfile", q(filepath.Join(dir, "zone.list"))},
		{"xfrdfile", q(filepath.Join(dir, "xfrd.state"))},
		{"xfrdir", q(dir)},
		{"logfile", q(filepath.Join(dir, "nsd.log"))},
		{"verbosity", "1"},
		{"identity", q("bench-nsd")},
		// Response rate limiting is on by default in NSD builds with RRL;
		// a benchmark from one source address would measure the limiter.
		{"rrl-ratelimit", "0"},
		{"rrl-whitelist-ratelimit", "0"},
		{"tcp-count", "128"},
	} {
		fmt.Fprintf(&b, "\t%s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "remote-control:\n\tcontrol-enable: no\n")
	fmt.Fprintf(&b, "zone:\n\tname: %s\n\tzonefile: %s\n", q(zd.Origin), q(zd.ZonePath))
	return b.String()
}

func prepareNSD(dir string, addr netip.AddrPort, zd *zoneData) (benchkit.Launch, error) {
	conf := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(conf, []byte(nsdConf(dir, addr, zd)), 0o600); err != nil {
		return benchkit.Launch{}, fmt.Errorf("write nsd config: %w", err)
	}
	l := benchkit.Launch{Name: "nsd", Argv: []string{"nsd", "-d", "-c", conf}}
	if _, err := exec.LookPath("nsd-checkconf"); err == nil {
		l.Check = []string{"nsd-checkconf", conf}
	}
	return l, nil
}
