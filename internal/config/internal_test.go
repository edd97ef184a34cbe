package config

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

// TestExampleShowsEveryKey decodes examples/node.yaml while recording the
// keys each mapping of the schema allows, and checks that the example uses
// every one of them, so the example cannot fall behind the schema.
func TestExampleShowsEveryKey(t *testing.T) {
	const file = "../../examples/node.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(file, "../../examples", len(data))
	d.keys = map[string][]string{}
	n := d.decodeNode(data, os.Hostname)
	if n == nil || len(d.errs) > 0 {
		t.Fatalf("decode %s: %v", file, joinErrors(file, d.errs))
	}
	var allowed []string
	for path, keys := range d.keys {
		for _, k := range keys {
			if p := schemaPath(keyPath(path, k)); !exampleExempt(p) {
				allowed = append(allowed, p)
			}
		}
	}
	var used []string
	for path := range d.src.pos {
		if path != "" && !strings.HasSuffix(path, "]") {
			used = append(used, schemaPath(path))
		}
	}
	// A key that excludes one the example uses is shown in a comment
	// beside it, as "# key:".
	for key, shown := range map[string]string{"dnstap.tcp": "dnstap.socket"} {
		short := key[strings.LastIndex(key, ".")+1:]
		if slices.Contains(used, shown) && !slices.Contains(used, key) && strings.Contains(string(data), "# "+short+":") {
			used = append(used, key)
		}
	}
	slices.Sort(allowed)
	slices.Sort(used)
	used = slices.Compact(used)
	if diff := cmp.Diff(allowed, used); diff != "" {
		t.Errorf("keys of the schema (-) missing from %s, or keys (+) it uses that the schema lacks:\n%s", file, diff)
	}
	// Every section with sub-keys must have been visited, or the check
	// above would not know its keys.
	for _, section := range []string{"", "identity", "zones[]", "limits", "metrics", "admin", "log", "bgp", "bgp.peers[]", "bgp.peers[].bfd", "bgp.announce[]", "bgp.levels", "bgp.levels.shed-1", "bgp.levels.shed-2", "bgp.levels.shed-3", "health", "control", "dnstap", "query_log"} {
		if _, ok := d.keys[section]; !ok {
			t.Errorf("%s: section %q not shown", file, section)
		}
	}
}

// exampleExempt are keys examples/node.yaml may leave out: files that
// LoadNode reads (a TLS primary's CA and client certificate, which the
// example names in a comment), and the catalog primaries' tls section, the
// same as the zones' primaries'.
func exampleExempt(p string) bool {
	switch p {
	case "zones[].primaries[].tls.ca", "zones[].primaries[].tls.cert", "zones[].primaries[].tls.key", "catalog.primaries[].tls":
		return true
	}
	return false
}

func TestCanonicalZoneName(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "example.com.", want: "example.com."},
		{in: "Example.COM", want: "example.com."},
		{in: ".", want: "."},
		{in: "_tcp.example.", want: "_tcp.example."},
		{in: "0/25.2.0.192.in-addr.arpa", want: "0/25.2.0.192.in-addr.arpa."},
		{in: "xn--bcher-kva.example", want: "xn--bcher-kva.example."},
		{in: strings.Repeat("a", 63) + ".", want: strings.Repeat("a", 63) + "."},
		// 4 labels of 63 characters with their length octets and the root:
		// 4*64+1 = 257 octets.
		{in: strings.Repeat(strings.Repeat("a", 63)+".", 4), err: "is longer than 255 octets"},
		// 3*64 + 61+1 + 1 = 255 octets exactly.
		{in: strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61) + ".", want: strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61) + "."},
		{in: strings.Repeat("a", 64) + ".", err: "label longer than 63"},
		{in: "", err: "must not be empty"},
		{in: "..", err: "empty label"},
		{in: ".example.", err: "empty label"},
		{in: "a..b", err: "empty label"},
		{in: "exa mple.", err: "contains ' '"},
		{in: "*.example.", err: "contains '*'"},
		{in: `a\.b.`, err: `contains '\\'`},
		{in: "bücher.example.", err: "contains"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := canonicalZoneName(tt.in)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("canonicalZoneName(%q): %v", tt.in, err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("canonicalZoneName(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
			case got != tt.want:
				t.Errorf("canonicalZoneName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSuppressed(t *testing.T) {
	s := newSource("n.yaml")
	s.markBad("bgp.peers[1].hold_time")
	s.markBad("listen[3]")
	s.markBad("limits")
	tests := []struct {
		path string
		want bool
	}{
		{"bgp.peers[1].hold_time", true},     // the bad value itself
		{"bgp.peers[1]", true},               // an ancestor
		{"bgp.peers", true},                  // "at least one peer"
		{"bgp", true},                        // an ancestor
		{"listen", true},                     // "at least one address"
		{"limits.udp_max_size", true},        // below a bad mapping
		{"bgp.peers[1].keepalive", false},    // a sibling
		{"bgp.peers[10].hold_time", false},   // a different index
		{"bgp.peers[1].hold_time_x", false},  // a longer name
		{"listen[2]", false},                 // another item
		{"limits_x", false},                  // a longer name
		{"health.interval", false},           // elsewhere
		{"bgp.router_id", false},             // a sibling of an ancestor
		{"bgp.peers[1].bfd.interval", false}, // below a sibling
	}
	for _, tt := range tests {
		if got := s.suppressed(tt.path); got != tt.want {
			t.Errorf("suppressed(%q) = %t, want %t", tt.path, got, tt.want)
		}
	}
}

// TestLinearTime guards against quadratic behaviour: a document with many
// bad items must not cost much more per item than one with few. It counts
// the bytes the parse allocates, which, unlike a clock, a loaded machine
// does not disturb (the errors of each item are built as strings, so a
// quadratic error path shows in them).
func TestLinearTime(t *testing.T) {
	doc := func(n int) []byte {
		var b strings.Builder
		b.WriteString("listen:\n")
		for range n {
			b.WriteString("  - x\n  - 127.0.0.1:53\n")
		}
		return []byte(b.String())
	}
	measure := func(data []byte) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := ParseNode(data, "n.yaml"); err == nil {
			t.Fatal("no error")
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := measure(doc(1000)), measure(doc(16000))
	t.Logf("16x the input allocated %d bytes against %d (%.1fx)", large, small, float64(large)/float64(small))
	// 16 times the input; quadratic behaviour would be 256 times.
	if large > 50*small {
		t.Errorf("16x the input allocated %d bytes against %d (%.0fx)", large, small, float64(large)/float64(small))
	}
}

// TestSelfReferentialAlias: an anchor whose value contains an alias to
// itself must not send the decoder into endless recursion.
func TestSelfReferentialAlias(t *testing.T) {
	for _, doc := range []string{
		"listen: &a [*a]\n",
		"bgp: &b {asn: 1, router_id: 192.0.2.1, peers: [*b], announce: *b}\nlisten: [\"127.0.0.1:53\"]\n",
		"zones: &z [{name: *z, file: *z}]\n",
	} {
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
			t.Fatalf("%q is not YAML: %v", doc, err)
		}
		if _, err := ParseNode([]byte(doc), "alias.yaml"); err == nil {
			t.Errorf("ParseNode(%q) succeeded", doc)
		}
	}
}

func TestHostnameUnavailable(t *testing.T) {
	fail := func() (string, error) { return "", errors.New("no uts namespace") }
	_, err := parseNode([]byte("identity: {nsid: true}\nlisten: [\"127.0.0.1:53\"]\n"), "n.yaml", ".", fail)
	want := "n.yaml:1:11: identity.name: not set, and the host name is unavailable: no uts namespace"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	n, err := parseNode([]byte("identity: {name: pop-c}\nlisten: [\"127.0.0.1:53\"]\n"), "n.yaml", ".", fail)
	if err != nil || n.Identity.Name != "pop-c" {
		t.Errorf("with a name set, the host name must not be needed: %v", err)
	}
}

func TestDefaultQueryAddr(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name   string
		listen []netip.AddrPort
		want   netip.AddrPort
	}{
		{"none", nil, netip.AddrPort{}},
		{"first", []netip.AddrPort{ap("192.0.2.53:53"), ap("127.0.0.1:53")}, ap("192.0.2.53:53")},
		{"skips placeholders", []netip.AddrPort{{}, ap("[2001:db8::53]:53")}, ap("[2001:db8::53]:53")},
		{"ipv4 wildcard", []netip.AddrPort{ap("0.0.0.0:5353")}, ap("127.0.0.1:5353")},
		{"ipv6 wildcard", []netip.AddrPort{ap("[::]:53")}, ap("[::1]:53")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultQueryAddr(tt.listen); got != tt.want {
				t.Errorf("defaultQueryAddr(%v) = %v, want %v", tt.listen, got, tt.want)
			}
		})
	}
}
