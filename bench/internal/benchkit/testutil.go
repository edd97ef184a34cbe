package benchkit

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// Helpers for the benchmarks' tests.

// NeedTool is testkit.RequireTool with the Debian package of each tool
// the benchmarks use: a missing tool skips the test, except under CI=true,
// where it fails it.
func NeedTool(t testing.TB, bin string) {
	t.Helper()
	pkg := map[string]string{
		"knotc": "knot", "knotd": "knot", "nsd": "nsd", "nsd-checkconf": "nsd", "nsd-checkzone": "nsd",
		"dnsperf": "dnsperf", "taskset": "util-linux",
	}[bin]
	if pkg == "" {
		pkg = bin
	}
	testkit.RequireTool(t, bin, pkg)
}

// ZoneOwners reads the owner names of a generated zone file (relative
// names, $ORIGIN and $TTL lines) with the number of records of each.
func ZoneOwners(path, origin string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	owners := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "$") {
			continue
		}
		owner := strings.Fields(line)[0]
		if owner == "@" {
			owner = origin
		} else {
			owner += "." + origin
		}
		owners[owner]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return owners, nil
}

// ServeUDP answers what comes to addr over UDP (port 0: a free one) with
// reply(query), or not at all when reply returns nil, until the test ends.
// It returns the address it listens on.
func ServeUDP(t testing.TB, addr netip.AddrPort, reply func(q []byte) []byte) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				_, _ = conn.WriteToUDPAddrPort(r, from)
			}
		}
	}()
	return netip.MustParseAddrPort(conn.LocalAddr().String())
}
