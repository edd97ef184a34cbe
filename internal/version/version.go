// Package version says which build of anycastdns is running, from the
// information the Go toolchain stamps into every binary
// (runtime/debug.ReadBuildInfo): the module version and the VCS revision.
//
// A binary built with "go build" inside a git checkout (make build) gets a
// pseudo-version such as v0.0.0-20261127093000-abcdef123456+dirty and the
// revision; one built with -buildvcs=false, or outside a checkout, has
// neither and reports "devel". Go stamps nothing in a git worktree (its
// .git is a file), so make build also passes the revision at link time,
// used only when the build information has none; a packager building from a
// source tarball can set the version the same way:
//
//	-ldflags "-X github.com/anycastdns/anycastdns/internal/version.override=1.2.3
//	          -X github.com/anycastdns/anycastdns/internal/version.revision=0123abc..."
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Info describes a build.
type Info struct {
	Version   string // module version, or "devel" when the build has none
	Revision  string // VCS revision (full hash); "" when not stamped
	Time      string // commit time of Revision, RFC 3339; "" when not stamped
	Modified  bool   // the working tree had uncommitted changes
	GoVersion string // of the toolchain, e.g. go1.26.0
}

// Set at link time: override replaces the module version, revision is
// used when the build information has no VCS revision.
var override, revision string

// Get returns the running binary's Info.
func Get() Info { return get() }

var get = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(bi, override, revision)
})

// resolve is the Info of bi (nil when the binary has none) with the values
// set at link time.
func resolve(bi *debug.BuildInfo, override, revision string) Info {
	info := Info{Version: "devel", GoVersion: runtime.Version()}
	if bi != nil {
		info = FromBuildInfo(bi)
	}
	if override != "" {
		info.Version = override
	}
	if info.Revision == "" && revision != "" {
		info.Revision = revision
	}
	return info
}

// FromBuildInfo extracts the Info of bi.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if info.Version == "" || info.Version == "(devel)" {
		info.Version = "devel"
	}
	if info.GoVersion == "" {
		info.GoVersion = runtime.Version()
	}
	return info
}

// ShortRevision is the first 12 digits of the revision, as in Go's
// pseudo-versions; "" when there is none.
func (i Info) ShortRevision() string {
	if len(i.Revision) > 12 {
		return i.Revision[:12]
	}
	return i.Revision
}

// String is the one-line form "anycastd version" prints:
// "v1.2.0 (revision 0123456789ab, 2026-11-27T09:30:00Z, modified; go1.26.0)".
func (i Info) String() string {
	s := i.Version
	if i.Revision == "" {
		return fmt.Sprintf("%s (no revision stamped; %s)", s, i.GoVersion)
	}
	s += " (revision " + i.ShortRevision()
	if i.Time != "" {
		s += ", " + i.Time
	}
	if i.Modified {
		s += ", modified"
	}
	return s + "; " + i.GoVersion + ")"
}
