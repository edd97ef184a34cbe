package benchkit

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The benchmark zone: hosts with A (10% with three), AAAA (60%), TXT (20%)
// and MX (10%), half directly under the apex, half one level down under
// empty non-terminals "g<k>"; 8% CNAMEs; 4% delegations with in-bailiwick
// glue; a wildcard with 1% explicit names below it; SOA, NS, MX and TXT at
// the apex. bench/README.md describes it.

// Layout divides the owner names of a zone between the record shapes.
type Layout struct {
	Hosts, CNAMEs, Delegs, WildExplicit, Groups int
}

// FixedNames is the number of names every zone has: apex, ns1, ns2, mail
// and the wildcard owner.
const FixedNames = 5

// NewLayout divides names owner names (at least 100) between the shapes.
func NewLayout(names int) (Layout, error) {
	if names < 100 {
		return Layout{}, fmt.Errorf("names %d: need at least 100", names)
	}
	l := Layout{
		CNAMEs:       names * 8 / 100,
		Delegs:       names * 4 / 100, // three names each: cut, ns1, ns2
		WildExplicit: names / 100,
	}
	l.Hosts = names - FixedNames - l.CNAMEs - 3*l.Delegs - l.WildExplicit
	l.Groups = max(1, l.Hosts/400)
	return l, nil
}

// HostName is the name of host i relative to the origin: half the hosts
// directly under the apex, half one level down under an empty non-terminal
// "g<k>" so that lookups see some depth and ENTs.
func (l Layout) HostName(i int) string {
	if i%2 == 0 {
		return fmt.Sprintf("h%d", i)
	}
	return fmt.Sprintf("h%d.g%d", i, i%l.Groups)
}

// HostHasAAAA says whether host i has an AAAA record.
func HostHasAAAA(i int) bool { return i%2 == 0 || i%5 == 1 }

// HostHasTXT says whether host i has a TXT record.
func HostHasTXT(i int) bool { return i%5 == 0 }

// HostHasMX says whether host i has an MX record.
func HostHasMX(i int) bool { return i%10 == 3 }

// HostACount is the number of A records of host i.
func HostACount(i int) int {
	if i%10 == 7 {
		return 3
	}
	return 1
}

// HostA is the n-th address of host i, from 100.64.0.0/10 (4M addresses;
// it wraps beyond that, which only makes addresses repeat).
func HostA(i, n int) netip.Addr {
	v := uint32(100<<24|64<<16) + uint32((i*4+n)%(1<<22))
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// HostAAAA is the address of host i's AAAA record.
func HostAAAA(i int) netip.Addr {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0}
	a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(a)
}

// Zone is a generated zone file.
type Zone struct {
	Origin   string // lower case, dot-terminated
	ZonePath string
	Names    int   // owner names with records
	Records  int   // resource records in the file
	Bytes    int64 // size of the file
	Layout   Layout
}

// ZoneInfo describes a generated zone in a benchmark's results.
type ZoneInfo struct {
	Origin  string `json:"origin"`
	Names   int    `json:"names"`
	Records int    `json:"records"`
	Bytes   int64  `json:"bytes"`
}

// Info is z's description for the results.
func (z *Zone) Info() ZoneInfo {
	return ZoneInfo{Origin: z.Origin, Names: z.Names, Records: z.Records, Bytes: z.Bytes}
}

// GenerateZone writes the zone file of origin (lower case, dot-terminated)
// with names owner names into dir, as dir/ORIGIN.zone.
func GenerateZone(origin string, names int, dir string) (*Zone, error) {
	l, err := NewLayout(names)
	if err != nil {
		return nil, err
	}
	z := &Zone{
		Origin:   origin,
		ZonePath: filepath.Join(dir, strings.TrimSuffix(origin, ".")+".zone"),
		Layout:   l,
	}
	if err := z.write(); err != nil {
		return nil, err
	}
	return z, nil
}

func (z *Zone) write() (err error) {
	l := z.Layout
	f, err := os.Create(z.ZonePath)
	if err != nil {
		return fmt.Errorf("create zone file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close zone file: %w", cerr)
		}
	}()
	cw := &countingWriter{w: f}
	w := bufio.NewWriterSize(cw, 1<<20)
	// A bufio.Writer keeps its first error and Flush returns it.
	printf := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	rec := func(format string, args ...any) {
		printf(format+"\n", args...)
		z.Records++
	}
	printf("$ORIGIN %s\n$TTL 3600\n", z.Origin)
	rec("@ SOA ns1 hostmaster 2024010101 7200 3600 1209600 3600")
	rec("@ NS ns1")
	rec("@ NS ns2")
	rec("@ MX 10 mail")
	rec(`@ TXT "v=spf1 -all"`)
	rec("ns1 A 192.0.2.1")
	rec("ns1 AAAA 2001:db8::1")
	rec("ns2 A 198.51.100.1")
	rec("ns2 AAAA 2001:db8:1::1")
	rec("mail A 203.0.113.25")
	rec("*.wild A 192.0.2.80")
	rec("*.wild AAAA 2001:db8::80")
	rec(`*.wild TXT "synthesised from a wildcard"`)
	names := FixedNames

	for i := range l.Hosts {
		n := l.HostName(i)
		for k := range HostACount(i) {
			rec("%s A %s", n, HostA(i, k))
		}
		if HostHasAAAA(i) {
			rec("%s AAAA %s", n, HostAAAA(i))
		}
		if HostHasTXT(i) {
			rec(`%s TXT "host %d; benchmark text record of a typical length"`, n, i)
		}
		if HostHasMX(i) {
			rec("%s MX 10 mail", n)
		}
		names++
	}
	for i := range l.CNAMEs {
		if i%8 == 7 {
			rec("c%d CNAME www%d.example.net.", i, i)
		} else {
			rec("c%d CNAME %s", i, l.HostName((i*7919)%l.Hosts))
		}
		names++
	}
	for i := range l.Delegs {
		rec("d%d NS ns1.d%d", i, i)
		rec("d%d NS ns2.d%d", i, i)
		rec("ns1.d%d A %s", i, HostA(i, 3))
		rec("ns1.d%d AAAA %s", i, HostAAAA(i))
		rec("ns2.d%d A %s", i, HostA(i, 2))
		names += 3
	}
	for i := range l.WildExplicit {
		rec("e%d.wild A %s", i, HostA(i, 1))
		names++
	}
	z.Names = names
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write zone file: %w", err)
	}
	z.Bytes = cw.n
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
