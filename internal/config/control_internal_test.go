package config

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestControlFullShowsEveryKey decodes testdata/control/full.good.yaml while
// recording the keys each mapping of the schema allows, and checks that it
// uses every one of them except token_file (the alternative to tokens), so
// the reference document cannot fall behind the schema.
func TestControlFullShowsEveryKey(t *testing.T) {
	const file = "testdata/control/full.good.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(file, "testdata/control", len(data))
	d.keys = map[string][]string{}
	c := d.decodeControl(data)
	if c == nil || len(d.errs) > 0 {
		t.Fatalf("decode %s: %v", file, joinErrors(file, d.errs))
	}
	var allowed []string
	for path, keys := range d.keys {
		for _, k := range keys {
			if p := schemaPath(keyPath(path, k)); p != "api.token_file" {
				allowed = append(allowed, p)
			}
		}
	}
	var used []string
	for path := range d.src.pos {
		// A policy's or a parent zone's name is a key the operator
		// chooses, not one of the schema.
		name := (strings.HasPrefix(path, "signing.policies.") || strings.HasPrefix(path, "signing.parent_servers.")) && strings.Count(path, ".") == 2
		if path != "" && !strings.HasSuffix(path, "]") && !name {
			used = append(used, schemaPath(path))
		}
	}
	slices.Sort(allowed)
	slices.Sort(used)
	used = slices.Compact(used)
	if diff := cmp.Diff(allowed, used); diff != "" {
		t.Errorf("keys of the schema (-) missing from %s, or keys (+) it uses that the schema lacks:\n%s", file, diff)
	}
	for _, section := range []string{"", "api", "xfr", "xfr.tsig_keys[]", "xfr.allow_transfer[]", "xfr.notify[]", "xfr.catalog", "log", "metrics", "stream", "levels", "signing"} {
		if _, ok := d.keys[section]; !ok {
			t.Errorf("%s: section %q not shown", file, section)
		}
	}
}
