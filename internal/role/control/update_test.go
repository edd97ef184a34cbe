package control

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestUpdateReload: xfr.update makes the transfer listener apply UPDATEs
// to the store; a reload that takes the key's rule away refuses them from
// then on, and one that drops xfr.update answers NOTIMP.
func TestUpdateReload(t *testing.T) {
	const secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	dir := t.TempDir()
	api, xfr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	doc := func(update string) string {
		return fmt.Sprintf(`data_dir: %s
api: {listen: %s, tokens: [%q]}
xfr:
  listen: [%s]
  tsig_keys: [{name: up., secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: up.}]
%s`, filepath.Join(dir, "data"), api, token, xfr, secret, update)
	}
	grant := "  update:\n    policy: [{key: up., match: zone, types: [TXT]}]\n"
	r := startFromFile(t, doc(grant))
	if _, err := r.c.Store().CreateZoneFromText(t.Context(), "example.com.", strings.NewReader(
		"@ 3600 IN SOA ns1 h 1 7200 3600 1209600 300\n@ 3600 IN NS ns1\nns1 3600 IN A 192.0.2.1\n"), ""); err != nil {
		t.Fatal(err)
	}
	send := func(value string) int {
		t.Helper()
		m := new(dns.Msg)
		m.SetUpdate("example.com.")
		rr, _ := dns.NewRR(`t.example.com. 60 IN TXT "` + value + `"`)
		m.Insert([]dns.RR{rr})
		m.SetTsig("up.", dns.HmacSHA256, 300, time.Now().Unix())
		c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second, TsigSecret: map[string]string{"up.": secret}}
		resp, _, err := c.Exchange(m, xfr)
		if err != nil {
			t.Fatalf("update %s: %v", value, err)
		}
		return resp.Rcode
	}
	if rc := send("one"); rc != dns.RcodeSuccess {
		t.Fatalf("granted update: %s", dns.RcodeToString[rc])
	}
	if rrs, err := r.c.Store().RRset(t.Context(), "example.com.", "t.example.com.", dns.TypeTXT); err != nil || len(rrs) != 1 {
		t.Fatalf("stored: %v %v", rrs, err)
	}
	r.reloadWith(t, doc("  update:\n    policy: [{key: up., match: zone, types: [A]}]\n"), "msg=reloaded")
	if rc := send("two"); rc != dns.RcodeRefused {
		t.Errorf("after the reload took TXT away: %s, want REFUSED", dns.RcodeToString[rc])
	}
	r.reloadWith(t, doc(""), "msg=reloaded")
	if rc := send("three"); rc != dns.RcodeNotImplemented {
		t.Errorf("after the reload dropped xfr.update: %s, want NOTIMP", dns.RcodeToString[rc])
	}
}
