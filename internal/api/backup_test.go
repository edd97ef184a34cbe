package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/api"
)

// TestBackupRestoreAPI: GET /v1/backup streams the backup file, POST
// /v1/restore loads it into an empty control plane (the same zones and
// serials), and refuses a non-empty one (409), a truncated file (400), a
// wrong media type (415) and a file over the body limit (413).
func TestBackupRestoreAPI(t *testing.T) {
	src, _ := server(t, 0)
	if resp, body := do(t, src.URL, call{method: "POST", path: api.PathZones, contentType: api.MediaJSON, body: zoneJSON}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, src.URL, call{method: "PUT", path: api.ZoneFilePath("example.org."), contentType: api.MediaZoneFile, body: zoneText}); resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("import: %d %s", resp.StatusCode, body)
	}
	resp, file := do(t, src.URL, call{method: "GET", path: api.PathBackup})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != api.MediaBackup {
		t.Fatalf("backup: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), file)
	}
	if !strings.HasPrefix(string(file), `{"format":"anycastdns-backup"`) || !strings.Contains(string(file), `{"end":{"zones":2,`) {
		t.Fatalf("backup file:\n%s", file)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(file), "\n"), "\n")
	truncated := strings.Join(lines[:len(lines)-1], "")

	dst, _ := server(t, 0)
	small, _ := server(t, 1024)
	for _, c := range []call{
		{name: "truncated", method: "POST", path: api.PathRestore, contentType: api.MediaBackup, body: truncated, status: http.StatusBadRequest},
		{name: "media type", method: "POST", path: api.PathRestore, contentType: "text/plain", body: string(file), status: http.StatusUnsupportedMediaType},
		{name: "GET restore", method: "GET", path: api.PathRestore, status: http.StatusMethodNotAllowed},
	} {
		if resp, body := do(t, dst.URL, c); resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
		}
	}
	if resp, body := do(t, small.URL, call{method: "POST", path: api.PathRestore, contentType: api.MediaBackup, body: string(file)}); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("restore over the body limit: %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, dst.URL, call{method: "POST", path: api.PathRestore, contentType: api.MediaBackup, body: string(file)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("restore: %d %s", resp.StatusCode, body)
	}
	var st api.BackupStats
	if err := json.Unmarshal(body, &st); err != nil || st.Zones != 2 || st.Signed != 0 || st.RRsets == 0 {
		t.Fatalf("restore answer %s (%v)", body, err)
	}
	_, want := do(t, src.URL, call{method: "GET", path: api.PathZones})
	_, got := do(t, dst.URL, call{method: "GET", path: api.PathZones})
	if string(got) != string(want) {
		t.Errorf("zones after the restore:\n%s\nwant\n%s", got, want)
	}
	for _, z := range []string{"example.com.", "example.org."} {
		_, w := do(t, src.URL, call{method: "GET", path: api.ZoneFilePath(z)})
		_, g := do(t, dst.URL, call{method: "GET", path: api.ZoneFilePath(z)})
		if string(g) != string(w) || len(g) == 0 {
			t.Errorf("zone %s after the restore:\n%s\nwant\n%s", z, g, w)
		}
	}
	if resp, body := do(t, dst.URL, call{method: "POST", path: api.PathRestore, contentType: api.MediaBackup, body: string(file)}); resp.StatusCode != http.StatusConflict {
		t.Errorf("restore into a non-empty store: %d %s, want 409", resp.StatusCode, body)
	}
}
