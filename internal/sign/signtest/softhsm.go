package signtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SoftHSMModule is Debian's softhsm2 PKCS#11 library.
const SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// SoftHSMPIN is the user PIN of the tokens SoftHSM makes.
const SoftHSMPIN = "1234"

// SoftHSM makes a SoftHSM token labelled label in a temporary directory
// and points SOFTHSM2_CONF at its configuration for the rest of the test
// (processes the test starts inherit it); the PIN is SoftHSMPIN. Without
// softhsm2 the test is skipped, or fails when CI is set to true.
func SoftHSM(t testing.TB, label string) (confPath string) {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if _, merr := os.Stat(SoftHSMModule); err != nil || merr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("softhsm2 is not installed (softhsm2-util: %v, %s: %v); CI must have it", err, SoftHSMModule, merr)
		}
		t.Skipf("softhsm2 is not installed (apt-get install softhsm2): %v %v", err, merr)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.CommandContext(t.Context(), util, "--init-token", "--free", "--label", label, "--pin", SoftHSMPIN, "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return conf
}
