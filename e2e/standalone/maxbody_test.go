//go:build linux

package standalone

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// zoneOfSize is a zone file of origin with hosts until it is at least
// size bytes long.
func zoneOfSize(origin string, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n", origin)
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "host%d A 192.0.2.%d\n", i, i%250+2)
	}
	return b.String()
}

// importZone PUTs a zone file through the API and returns the status.
func importZone(t *testing.T, api, origin, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPut,
		fmt.Sprintf("http://%s/v1/zones/%s/zonefile", api, origin), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+namesToken)
	req.Header.Set("Content-Type", "text/dns")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s zonefile: %v", origin, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestAPIMaxBody: -api-max-body sets the largest body the standalone's API
// takes (the control plane's api.max_body): with 8KiB a 16 KiB zone file is
// refused with 413 and a 4 KiB one imported and served; without the flag
// the 16 KiB one is imported (the default, 32 MiB).
func TestAPIMaxBody(t *testing.T) {
	small, large := zoneOfSize("small.test.", 4<<10), zoneOfSize("large.test.", 16<<10)

	dnsAddr, api := startStandalone(t, "-api-max-body", "8KiB")
	if got := importZone(t, api, "large.test.", large); got != http.StatusRequestEntityTooLarge {
		t.Errorf("-api-max-body 8KiB, 16 KiB zone file: status %d, want 413", got)
	}
	if got := importZone(t, api, "small.test.", small); got != http.StatusOK {
		t.Fatalf("-api-max-body 8KiB, 4 KiB zone file: status %d, want 200", got)
	}
	waitA(t, dnsAddr, "host0.small.test.", "192.0.2.2", 15*time.Second)

	dnsAddr, api = startStandalone(t)
	if got := importZone(t, api, "large.test.", large); got != http.StatusOK {
		t.Fatalf("default body limit, 16 KiB zone file: status %d, want 200", got)
	}
	waitA(t, dnsAddr, "host0.large.test.", "192.0.2.2", 15*time.Second)
}

// TestAPIMaxBodyBad: a -api-max-body that is not a size, or outside
// 1KiB..1GiB, stops the standalone at start with an error naming the flag.
func TestAPIMaxBodyBad(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	for _, v := range []string{"12", "2GiB", "lots", "-5", "1.5MiB"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a value taken would start it
		out, err := exec.CommandContext(ctx, bin, "standalone", "-data", t.TempDir(), "-api-max-body", v).CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("-api-max-body %s: started, want an error", v)
			continue
		}
		if !strings.Contains(string(out), "-api-max-body: \""+v+"\"") {
			t.Errorf("-api-max-body %s: error %q does not name the flag and the value", v, out)
		}
	}
}
