package health

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// kernelPressureFields are the kernel's counters of a socket that could
// not keep up, by the table they are in: UDP datagrams dropped for a full
// receive buffer, TCP connections dropped for a full accept or SYN queue.
var kernelPressureFields = []struct{ file, table, field string }{
	{"/proc/self/net/snmp", "Udp", "RcvbufErrors"},
	{"/proc/self/net/snmp6", "", "Udp6RcvbufErrors"},
	{"/proc/self/net/netstat", "TcpExt", "ListenOverflows"},
	{"/proc/self/net/netstat", "TcpExt", "ListenDrops"},
}

// KernelPressure sums the kernel's counters of sockets that could not keep
// up in the process's network namespace (DNSCheck.Pressure): they move
// when a flood fills the server's sockets, and not when the check's path
// is cut. A file or field the kernel does not have counts 0; a malformed
// one is an error naming it.
func KernelPressure() (uint64, error) {
	var total uint64
	cache := map[string]string{}
	for _, f := range kernelPressureFields {
		text, ok := cache[f.file]
		if !ok {
			b, err := os.ReadFile(f.file)
			if err != nil && !os.IsNotExist(err) {
				return 0, fmt.Errorf("kernel pressure: %w", err)
			}
			text = string(b)
			cache[f.file] = text
		}
		n, err := procCounter(text, f.table, f.field)
		if err != nil {
			return 0, fmt.Errorf("kernel pressure: %s: %w", f.file, err)
		}
		total += n
	}
	return total, nil
}

// procCounter finds field in the text of a /proc/net counter file: in the
// table's pair of lines ("Udp: name name..." then "Udp: value value...",
// snmp and netstat) or, with no table, on a "name value" line (snmp6). A
// counter that is absent is 0.
func procCounter(text, table, field string) (uint64, error) {
	lines := strings.Split(text, "\n")
	if table == "" {
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == field {
				n, err := strconv.ParseUint(f[1], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%s: bad value %q", field, f[1])
				}
				return n, nil
			}
		}
		return 0, nil
	}
	prefix := table + ":"
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != prefix || len(values) == 0 || values[0] != prefix {
			continue
		}
		if len(names) != len(values) {
			return 0, fmt.Errorf("%s: %d names but %d values", table, len(names), len(values))
		}
		for j, name := range names {
			if name == field {
				n, err := strconv.ParseUint(values[j], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%s %s: bad value %q", table, field, values[j])
				}
				return n, nil
			}
		}
		return 0, nil
	}
	return 0, nil
}
