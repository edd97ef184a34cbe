// Package e2etest holds what several end-to-end test packages need: a port
// free for both UDP and TCP on 127.0.0.1, and the anycastd binary.
package e2etest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// FreePort returns a port on 127.0.0.1 that was free for TCP and UDP a
// moment ago.
func FreePort(t testing.TB) uint16 {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen tcp: %v", err)
		}
		addr := ln.Addr().(*net.TCPAddr)
		pc, err := net.ListenPacket("udp", addr.String())
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = pc.Close()
		return uint16(addr.Port)
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return 0
}

// BuildAnycastd returns $ANYCASTD_BIN, or builds cmd/anycastd into the
// test's temporary directory.
func BuildAnycastd(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("ANYCASTD_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "anycastd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/anycastdns/anycastdns/cmd/anycastd").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// RequireTool returns the path of an external program (in PATH or an sbin
// directory). A missing one skips the test, except under CI=true, where it
// fails it: CI installs what the tests need (.ci/run), so a missing tool
// there is a broken CI, not a test to leave out.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := name + " not found (install the Debian package " + debianPackage + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true: the test must run")
	}
	t.Skip(msg)
	return ""
}
