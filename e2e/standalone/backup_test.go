//go:build linux

package standalone

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestBackupRestoreWithTheBinaries: anycastctl backup from one anycastd
// standalone and anycastctl restore into another (emptied first: a
// restore into a store that holds a zone is refused) make the second
// one's node serve the same zones at the same serials.
func TestBackupRestoreWithTheBinaries(t *testing.T) {
	ctl := testkit.BuildAnycastctl(t)
	anycastctl := func(api string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(ctl, args...)
		cmd.Env = append(os.Environ(), "ANYCASTCTL_API=http://"+api, "ANYCASTCTL_TOKEN="+namesToken)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		case err != nil:
			t.Fatal(err)
		}
		return 0, string(out)
	}
	srcDNS, srcAPI := startStandalone(t)
	dstDNS, dstAPI := startStandalone(t)
	if code, out := anycastctl(srcAPI, "zone", "create", "example.org", "-ns", "ns1.example.net.", "-policy", "date"); code != 0 {
		t.Fatalf("zone create: exit %d\n%s", code, out)
	}
	if code, out := anycastctl(srcAPI, "record", "set", "example.org", "www", "A", "192.0.2.44"); code != 0 {
		t.Fatalf("record set: exit %d\n%s", code, out)
	}
	waitRcode(t, srcDNS, "example.org.", dns.RcodeSuccess, 5*time.Second)
	file := filepath.Join(t.TempDir(), "store.backup")
	if code, out := anycastctl(srcAPI, "backup", "-o", file); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	if code, out := anycastctl(dstAPI, "restore", file); code != 1 || !strings.Contains(out, "not empty") {
		t.Errorf("restore into a store with example.com.: exit %d\n%s", code, out)
	}
	if code, out := anycastctl(dstAPI, "zone", "delete", "example.com", "-yes"); code != 0 {
		t.Fatalf("zone delete: exit %d\n%s", code, out)
	}
	waitRcode(t, dstDNS, "example.com.", dns.RcodeRefused, 5*time.Second)
	if code, out := anycastctl(dstAPI, "restore", file); code != 0 || !strings.Contains(out, "restored 2 zones") {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	for _, z := range []string{"example.com.", "example.org."} {
		want := testkit.SOASerial(srcDNS, z)
		deadline := time.Now().Add(5 * time.Second)
		for testkit.SOASerial(dstDNS, z) != want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := testkit.SOASerial(dstDNS, z); got != want || want == 0 {
			t.Errorf("%s: the restored node serves serial %d, the source %d", z, got, want)
		}
	}
	waitA(t, dstDNS, "www.example.org.", "192.0.2.44", 5*time.Second)
	_, want := anycastctl(srcAPI, "zone", "list")
	_, got := anycastctl(dstAPI, "zone", "list")
	if got != want {
		t.Errorf("zones after the restore:\n%s\nwant\n%s", got, want)
	}
}
