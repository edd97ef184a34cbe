package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolveLinkTimeValues(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "aaaa"}}}
	tests := []struct {
		name               string
		bi                 *debug.BuildInfo
		override, revision string
		want               Info
	}{
		{"no build info", nil, "", "", Info{Version: "devel", GoVersion: runtime.Version()}},
		{"link-time revision fills a gap", &debug.BuildInfo{GoVersion: "go1.26.0"}, "", "bbbb",
			Info{Version: "devel", Revision: "bbbb", GoVersion: "go1.26.0"}},
		{"the stamped revision wins", stamped, "", "bbbb", Info{Version: "devel", Revision: "aaaa", GoVersion: "go1.26.0"}},
		{"override", stamped, "1.2.3", "", Info{Version: "1.2.3", Revision: "aaaa", GoVersion: "go1.26.0"}},
	}
	for _, tt := range tests {
		if got := resolve(tt.bi, tt.override, tt.revision); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
