package version_test

import (
	"runtime/debug"
	"testing"

	"github.com/anycastdns/anycastdns/internal/version"
)

func TestFromBuildInfo(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name string
		bi   debug.BuildInfo
		want version.Info
		str  string
	}{
		{
			name: "pseudo-version from a checkout",
			bi: debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261127093000-0123456789ab+dirty"},
				Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
					{Key: "vcs.time", Value: "2026-11-27T09:30:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			want: version.Info{Version: "v0.0.0-20261127093000-0123456789ab+dirty", Revision: rev, Time: "2026-11-27T09:30:00Z",
				Modified: true, GoVersion: "go1.26.0"},
			str: "v0.0.0-20261127093000-0123456789ab+dirty (revision 0123456789ab, 2026-11-27T09:30:00Z, modified; go1.26.0)",
		},
		{
			name: "tagged release installed with go install",
			bi:   debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.0"}},
			want: version.Info{Version: "v1.2.0", GoVersion: "go1.26.1"},
			str:  "v1.2.0 (no revision stamped; go1.26.1)",
		},
		{
			name: "devel with a revision",
			bi: debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}},
			want: version.Info{Version: "devel", Revision: rev, GoVersion: "go1.26.0"},
			str:  "devel (revision 0123456789ab; go1.26.0)",
		},
		{
			name: "nothing stamped (-buildvcs=false)",
			bi:   debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			want: version.Info{Version: "devel", GoVersion: "go1.26.0"},
			str:  "devel (no revision stamped; go1.26.0)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := version.FromBuildInfo(&tt.bi)
			if got != tt.want {
				t.Errorf("FromBuildInfo = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String = %q, want %q", s, tt.str)
			}
		})
	}
}

// TestGet checks that the test binary's own build information is read.
func TestGet(t *testing.T) {
	info := version.Get()
	if info.Version == "" || info.GoVersion == "" {
		t.Errorf("Get = %+v: want a version (at least \"devel\") and a Go version", info)
	}
}
