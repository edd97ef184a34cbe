package config

import (
	"os"
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
			allowed = append(allowed, schemaPath(keyPath(path, k)))
		}
	}
	var used []string
	for path := range d.src.pos {
		if path != "" && !strings.HasSuffix(path, "]") {
			used = append(used, schemaPath(path))
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
	for _, section := range []string{"", "identity", "zones[]", "limits", "metrics", "admin", "log", "bgp", "bgp.peers[]", "bgp.peers[].bfd", "bgp.announce[]", "health"} {
		if _, ok := d.keys[section]; !ok {
			t.Errorf("%s: section %q not shown", file, section)
		}
	}
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

func TestRelated(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "listen", true},
		{"listen", "listen", true},
		{"listen", "listen[0]", true},
		{"bgp", "bgp.peers[0].asn", true},
		{"bgp.peers[0].asn", "bgp", true},
		{"bgp.peers[1]", "bgp.peers[10]", false},
		{"bgp.peers[1]", "bgp.peers[1].bfd", true},
		{"limits.tcp_max", "limits.tcp_max_conns", false},
		{"zones[0].name", "zones[0].file", false},
	}
	for _, tt := range tests {
		if got := related(tt.a, tt.b); got != tt.want {
			t.Errorf("related(%q, %q) = %t, want %t", tt.a, tt.b, got, tt.want)
		}
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
