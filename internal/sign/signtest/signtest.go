// Package signtest checks signed zones with the external verifiers that
// the sign package's own tests use (ldns-verify-zone, kzonecheck,
// dnssec-verify), for the tests of the packages that sign through it: the
// store and the end-to-end tests.
package signtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Verify fails the test for each verifier that rejects z.
func Verify(t testing.TB, z *zone.Zone) {
	t.Helper()
	for _, f := range Failures(t, z) {
		t.Error(f)
	}
}

// Failures returns what each verifier that rejects z says (none: all
// accept it). A verifier that is not installed skips the test.
func Failures(t testing.TB, z *zone.Zone) []string {
	t.Helper()
	var buf bytes.Buffer
	if _, err := z.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return TextFailures(t, z.Origin, buf.Bytes(), cskOnly(z))
}

// cskOnly reports whether every key of z's DNSKEY RRset has the SEP flag
// (a CSK alone), which dnssec-verify must be told with -z.
func cskOnly(z *zone.Zone) bool {
	ks := z.Apex.Get(dns.TypeDNSKEY)
	if ks == nil {
		return false
	}
	for rd := range ks.All() {
		if rd[1]&1 == 0 {
			return false
		}
	}
	return true
}

// TextFailures is Failures of master-file text (a transferred zone);
// csk says every key is a CSK.
func TextFailures(t testing.TB, origin string, text []byte, csk bool) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "signed.zone")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	var z []string
	if csk {
		z = []string{"-z"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var fails []string
	for _, v := range []struct {
		tool, pkg string
		args      []string
	}{
		{"ldns-verify-zone", "ldnsutils", []string{"-V", "1", path}},
		{"kzonecheck", "knot-dnssecutils", []string{"-o", origin, "-d", "on", path}},
		{"dnssec-verify", "bind9-utils", append(z, "-q", "-o", origin, path)},
	} {
		bin := testkit.RequireTool(t, v.tool, v.pkg)
		out, err := exec.CommandContext(ctx, bin, v.args...).CombinedOutput()
		if err != nil {
			fails = append(fails, fmt.Sprintf("%s %s: %v\n%s", v.tool, strings.Join(v.args, " "), err, out))
		}
	}
	if len(fails) > 0 && testing.Verbose() {
		t.Logf("zone:\n%s", text)
	}
	return fails
}
