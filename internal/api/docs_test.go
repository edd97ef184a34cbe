package api

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// TestDocumentedRoutes keeps docs/api.md true to the handler: every
// endpoint the handler serves has a "### METHOD PATH" section there and
// every such section is an endpoint, and every JSON field of the API's
// types is mentioned.
func TestDocumentedRoutes(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	for _, rt := range (&handler{}).routes() {
		for m := range rt.methods {
			served = append(served, m+" "+rt.pattern)
		}
	}
	var documented []string
	for _, m := range regexp.MustCompile(`(?m)^### ([A-Z]+ /\S*)$`).FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("docs/api.md has no section %q", "### "+s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("docs/api.md documents %q, which the handler does not serve", d)
		}
	}
	if len(served) != len(slices.Compact(documented)) {
		t.Errorf("%d endpoints served, %d documented: %q", len(served), len(documented), documented)
	}

	for _, v := range []any{ZoneList{}, Zone{}, RRsetList{}, RRset{}, PutRRset{}, CreateZone{}, WriteResult{}, Error{},
		fleet.View{}, fleet.MemberView{}, fleet.ZoneLag{}, fleet.LevelsView{}, fleet.PoPView{}, fleet.PinView{}, fleet.VantageView{},
		fleet.MonitorView{}, fleet.Report{}, fleet.PoPReport{}, PinRequest{},
		Pool{}, PoolList{}, PoolWrite{}, steer.Endpoint{}, steer.Check{}, steer.LoadSource{},
		PutDNSSEC{}, DNSSECStatus{}, DNSSECKey{}, DNSSECPolicy{}, DSSeenRequest{}, BackupStats{}} {
		for _, field := range jsonFields(reflect.TypeOf(v)) {
			if !strings.Contains(string(doc), `"`+field+`"`) && !strings.Contains(string(doc), "`"+field+"`") {
				t.Errorf("docs/api.md does not mention the field %q of %T", field, v)
			}
		}
	}
}

// jsonFields returns the JSON names of a struct's fields, those of
// embedded structs included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if f.Anonymous {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}
