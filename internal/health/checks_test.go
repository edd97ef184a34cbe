package health

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestZoneCheck(t *testing.T) {
	tests := []struct {
		name   string
		want   []string
		loaded map[string]ZoneState
		err    string // "" = passes
	}{
		{
			name:   "all loaded",
			want:   []string{"example.com.", "example.net."},
			loaded: map[string]ZoneState{"example.com.": {Serial: 1}, "example.net.": {Serial: 2}, "extra.org.": {}},
		},
		{
			name:   "names compared in any case, with or without the dot",
			want:   []string{"Example.COM"},
			loaded: map[string]ZoneState{"example.com.": {Serial: 1}},
		},
		{
			name:   "nothing wanted",
			loaded: map[string]ZoneState{},
		},
		{
			name:   "one missing",
			want:   []string{"example.com.", "example.net."},
			loaded: map[string]ZoneState{"example.com.": {Serial: 1}},
			err:    "not loaded: example.net.",
		},
		{
			name:   "nothing loaded",
			want:   []string{"a.", "b.", "c.", "d.", "e."},
			loaded: nil,
			err:    "not loaded: a., b., c. and 2 more",
		},
		{
			// It answers SERVFAIL alone: not the node's failure.
			name:   "expired",
			want:   []string{"example.com.", "example.net."},
			loaded: map[string]ZoneState{"example.com.": {Serial: 7, Expired: true}, "example.net.": {Serial: 2}},
		},
		{
			name:   "every zone expired",
			want:   []string{"example.com.", "example.net."},
			loaded: map[string]ZoneState{"example.com.": {Serial: 7, Expired: true}, "example.net.": {Serial: 2, Expired: true}},
		},
		{
			name:   "missing and expired",
			want:   []string{"example.com.", "example.net."},
			loaded: map[string]ZoneState{"example.com.": {Serial: 7, Expired: true}},
			err:    "not loaded: example.net.",
		},
		{
			// Expired on disk at start-up, no refresh attempt yet.
			name:   "unconfirmed",
			want:   []string{"example.com.", "example.net."},
			loaded: map[string]ZoneState{"example.com.": {Serial: 7, Expired: true, Unconfirmed: true}, "example.net.": {Serial: 2}},
			err:    "not loaded: example.com.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := &ZoneCheck{
				Want:   func() []string { return tt.want },
				Loaded: func() map[string]ZoneState { return tt.loaded },
			}
			err := z.Check(t.Context())
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Errorf("Check = %q, want %q", got, tt.err)
			}
		})
	}
}

// TestZoneCheckNewZones: once the check has passed, a zone added later is
// pending until it loads, not a failure, and an expired zone is no failure
// either.
func TestZoneCheckNewZones(t *testing.T) {
	want := []string{"example.com."}
	loaded := map[string]ZoneState{}
	z := &ZoneCheck{Want: func() []string { return want }, Loaded: func() map[string]ZoneState { return loaded }}
	step := func(name, wantErr string, wantPending ...string) {
		t.Helper()
		got := ""
		if err := z.Check(t.Context()); err != nil {
			got = err.Error()
		}
		if got != wantErr {
			t.Errorf("%s: Check = %q, want %q", name, got, wantErr)
		}
		if p := z.Pending(); !slices.Equal(p, wantPending) {
			t.Errorf("%s: Pending = %v, want %v", name, p, wantPending)
		}
	}
	step("starting, nothing loaded", "not loaded: example.com.")
	loaded["example.com."] = ZoneState{Serial: 1}
	step("loaded", "")
	want = append(want, "new.example.")
	step("a zone added", "", "new.example.")
	loaded["new.example."] = ZoneState{Serial: 1}
	step("the new zone loaded", "")
	loaded["new.example."] = ZoneState{Serial: 1, Expired: true}
	step("expired", "")
	loaded["example.com."] = ZoneState{Serial: 1, Expired: true}
	step("every zone expired", "")
}

func TestFileCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "maintenance")
	f := &FileCheck{Path: path}
	if err := f.Check(t.Context()); err != nil {
		t.Fatalf("without the file: %v", err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := f.Check(t.Context())
	if !errors.Is(err, ErrMaintenance) {
		t.Fatalf("with the file: %v, want %v", err, ErrMaintenance)
	}
	if want := "maintenance file present: " + path; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(t.Context()); err != nil {
		t.Errorf("after removing the file: %v", err)
	}

	// A path that cannot be examined fails rather than pass silently.
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := &FileCheck{Path: filepath.Join(notDir, "maintenance")}
	if err := bad.Check(t.Context()); err == nil || errors.Is(err, ErrMaintenance) {
		t.Errorf("path below a file: %v, want a stat error", err)
	}
}

func TestFlagCheck(t *testing.T) {
	var f FlagCheck
	if err := f.Check(t.Context()); err != nil || f.Drained() {
		t.Fatalf("zero value: %v, drained %v", err, f.Drained())
	}
	f.Set(true)
	if err := f.Check(t.Context()); !errors.Is(err, ErrDrained) || !f.Drained() {
		t.Errorf("drained: %v, drained %v", err, f.Drained())
	}
	f.Set(false)
	if err := f.Check(t.Context()); err != nil {
		t.Errorf("undrained: %v", err)
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		check Check
		want  string
	}{
		{&DNSCheck{}, "dns"},
		{&DNSCheck{Label: "dns_v6"}, "dns_v6"},
		{&ZoneCheck{}, "zones"},
		{&FileCheck{}, "maintenance_file"},
		{&FlagCheck{}, "drain"},
		{&FlagCheck{Label: "operator"}, "operator"},
	}
	for _, tt := range tests {
		if got := tt.check.Name(); got != tt.want {
			t.Errorf("%T.Name() = %q, want %q", tt.check, got, tt.want)
		}
	}
}
