//go:build linux

package dnssec

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	token     = "dnssec-test-token-0123456789"
	keyName   = "xfr-key."
	keySecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	catalog   = "catalog.invalid."
	zoneName  = "signed.example."
)

// plane is a control plane and a node on loopback.
type plane struct {
	api     *apiclient.Client
	apiURL  string
	xfrAddr string
	dnsAddr string
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// startPlane starts `anycastd control` with a signing key file and a node
// that follows its catalog.
func startPlane(t *testing.T) *plane {
	t.Helper()
	bin := testkit.BuildAnycastd(t)
	dir := t.TempDir()
	apiAddr, xfrAddr, dnsAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	keyFile := filepath.Join(dir, "signing.key")
	writeFile(t, keyFile, string(sign.GenerateKeyFile()), 0o600)
	ctlCfg := filepath.Join(dir, "control.yaml")
	writeFile(t, ctlCfg, fmt.Sprintf(`data_dir: %q
api:
  listen: %q
  tokens: [%q]
  max_body: 1073741824
xfr:
  listen: [%q]
  tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s}]
  notify: [{addr: %q, key: %s}]
  catalog: {zone: %s}
signing:
  key_file: %q
  policies:
    nsec3: {nsec3: true, csk: false}
log: {level: info}
`, filepath.Join(dir, "control"), apiAddr, token, xfrAddr, keyName, keySecret, keyName, dnsAddr, keyName, catalog, keyFile), 0o644)
	nodeCfg := filepath.Join(dir, "node.yaml")
	writeFile(t, nodeCfg, fmt.Sprintf(`identity: {name: dnssec-pop}
listen: [%q]
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: %s
  primaries: [{addr: %q, key: %s}]
log: {level: info}
drain_period: 0s
`, dnsAddr, filepath.Join(dir, "node"), keyName, keySecret, catalog, xfrAddr, keyName), 0o644)
	ctl := testkit.StartProcess(t, "control", filepath.Join(dir, "control.log"), bin, "control", "-config", ctlCfg)
	ctl.StopAfter, ctl.CheckExit = 20*time.Second, true
	testkit.WaitHTTP(t, "http://"+apiAddr+api.PathZones, 15*time.Second)
	node := testkit.StartProcess(t, "node", filepath.Join(dir, "node.log"), bin, "node", "-config", nodeCfg)
	node.StopAfter, node.CheckExit = 20*time.Second, true
	cl, err := apiclient.New("http://"+apiAddr, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &plane{api: cl, apiURL: "http://" + apiAddr, xfrAddr: xfrAddr, dnsAddr: dnsAddr}
}

// axfr transfers a zone from the control plane.
func (p *plane) axfr(t *testing.T, zone string) []dns.RR {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr(zone)
	m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{keyName: keySecret}}
	envs, err := tr.In(m, p.xfrAddr)
	if err != nil {
		t.Fatal(err)
	}
	var out []dns.RR
	for env := range envs {
		if env.Error != nil {
			t.Fatal(env.Error)
		}
		out = append(out, env.RR...)
	}
	if len(out) > 1 {
		out = out[:len(out)-1] // the closing SOA
	}
	return out
}

// query asks the node over TCP with DO.
func (p *plane) query(name string, t uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.SetEdns0(4096, true)
	c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, p.dnsAddr)
	return r, err
}

// waitSerial waits until the node answers the zone's SOA with serial.
func (p *plane) waitSerial(t *testing.T, zone string, serial uint32, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if r, err := p.query(zone, dns.TypeSOA); err == nil && len(r.Answer) > 0 {
			if soa, ok := r.Answer[0].(*dns.SOA); ok && soa.Serial == serial {
				return time.Since(start)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("the node does not serve %s serial %d after %v", zone, serial, limit)
	return 0
}

// key is an RR's identity for comparison.
func key(rr dns.RR) string {
	c := dns.Copy(rr)
	c.Header().Name = strings.ToLower(c.Header().Name)
	return c.String()
}

// served collects the zone as the node serves it: every (name, type) of
// the control plane's transfer asked of the node, the records of that name
// and type (or the signatures over it) taken from every section.
func (p *plane) served(t *testing.T, want []dns.RR) []dns.RR {
	t.Helper()
	type q struct {
		name string
		t    uint16
	}
	var qs []q
	seen := map[q]bool{}
	for _, rr := range want {
		h := rr.Header()
		k := q{strings.ToLower(h.Name), h.Rrtype}
		if sig, ok := rr.(*dns.RRSIG); ok {
			k.t = sig.TypeCovered
		}
		if !seen[k] {
			seen[k] = true
			qs = append(qs, k)
		}
	}
	var out []dns.RR
	have := map[string]bool{}
	for _, x := range qs {
		r, err := p.query(x.name, x.t)
		if err != nil {
			t.Fatalf("query %s %s: %v", x.name, dns.TypeToString[x.t], err)
		}
		if x.t == dns.TypeNSEC && !strings.EqualFold(x.name, zoneName) && !hasType(r, x.name, dns.TypeNSEC) {
			// A delegation with a DS answers with a referral, without
			// its NSEC: a name just after it (sub0 after sub) is proved
			// not to exist with that NSEC.
			label, rest, _ := strings.Cut(x.name, ".")
			if r, err = p.query(label+"0."+rest, dns.TypeA); err != nil {
				t.Fatalf("query %s0.%s A: %v", label, rest, err)
			}
		}
		for _, rr := range slices.Concat(r.Answer, r.Ns, r.Extra) {
			h := rr.Header()
			if !strings.EqualFold(h.Name, x.name) {
				continue
			}
			typ := h.Rrtype
			if sig, ok := rr.(*dns.RRSIG); ok {
				typ = sig.TypeCovered
			}
			if typ != x.t || h.Rrtype == dns.TypeOPT {
				continue
			}
			if k := key(rr); !have[k] {
				have[k] = true
				out = append(out, rr)
			}
		}
	}
	return out
}

// hasType reports whether a reply holds records of type t at name.
func hasType(r *dns.Msg, name string, t uint16) bool {
	for _, rr := range slices.Concat(r.Answer, r.Ns, r.Extra) {
		if strings.EqualFold(rr.Header().Name, name) && rr.Header().Rrtype == t {
			return true
		}
	}
	return false
}

// verify checks that the node serves exactly the control plane's signed
// zone and that it passes ldns-verify-zone, kzonecheck -d on and
// dnssec-verify (signtest.TextFailures).
func (p *plane) verify(t *testing.T, step string, serial uint32) {
	t.Helper()
	p.waitSerial(t, zoneName, serial, 20*time.Second)
	want := p.axfr(t, zoneName)
	got := p.served(t, want)
	var wk, gk []string
	for _, rr := range want {
		wk = append(wk, key(rr))
	}
	for _, rr := range got {
		gk = append(gk, key(rr))
	}
	slices.Sort(wk)
	slices.Sort(gk)
	for _, k := range wk {
		if _, ok := slices.BinarySearch(gk, k); !ok {
			t.Errorf("%s: the node does not serve %s", step, k)
		}
	}
	for _, k := range gk {
		if _, ok := slices.BinarySearch(wk, k); !ok {
			t.Errorf("%s: the node serves %s, which the control plane's zone lacks", step, k)
		}
	}
	var text bytes.Buffer
	csk := true
	for _, rr := range got {
		text.WriteString(rr.String() + "\n")
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags&1 == 0 {
			csk = false
		}
	}
	for _, f := range signtest.TextFailures(t, zoneName, text.Bytes(), csk) {
		t.Errorf("%s: on the zone the node serves: %s", step, f)
	}
	if t.Failed() {
		t.FailNow()
	}
}

var baseRecords = []string{
	"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
	"@ 3600 IN NS ns1",
	"ns1 3600 IN A 192.0.2.1",
	"www 300 IN A 192.0.2.10",
	"mail 300 IN MX 10 www",
	"sub 3600 IN NS ns.sub",
	"ns.sub 3600 IN A 192.0.2.53",
	"a.b.c 300 IN TXT \"deep\"",
}

// TestSignedZoneThroughNode: a zone signed through the API (NSEC with a
// CSK, then NSEC3 with a KSK and a ZSK) and edited through the API is
// served by the node, after every write, as the control plane signed it,
// and it validates.
func TestSignedZoneThroughNode(t *testing.T) {
	p := startPlane(t)
	ctx := t.Context()
	if _, err := p.api.CreateZone(ctx, api.CreateZone{Name: zoneName, Records: baseRecords}); err != nil {
		t.Fatal(err)
	}
	st, err := p.api.SetDNSSEC(ctx, zoneName, api.PutDNSSEC{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	p.verify(t, "enable (nsec, csk)", st.Serial)
	edits := []struct {
		name string
		do   func() (uint32, error)
	}{
		{"add a name", func() (uint32, error) {
			r, err := p.api.PutRRset(ctx, zoneName, "new", "A", api.PutRRset{TTL: ptr(uint32(300)), Records: []string{"192.0.2.77"}}, "")
			return r.Serial, err
		}},
		{"change an RRset", func() (uint32, error) {
			r, err := p.api.PutRRset(ctx, zoneName, "www", "A", api.PutRRset{Records: []string{"192.0.2.11", "192.0.2.12"}}, "")
			return r.Serial, err
		}},
		{"DS at the delegation", func() (uint32, error) {
			r, err := p.api.PutRRset(ctx, zoneName, "sub", "DS", api.PutRRset{TTL: ptr(uint32(3600)), Records: []string{"12345 13 2 " + strings.Repeat("AB", 32)}}, "")
			return r.Serial, err
		}},
		{"delete a deep name", func() (uint32, error) {
			r, err := p.api.DeleteRRset(ctx, zoneName, "a.b.c", "TXT", "")
			return r.Serial, err
		}},
		{"switch to nsec3 with a KSK and a ZSK", func() (uint32, error) {
			if _, err := p.api.SetDNSSEC(ctx, zoneName, api.PutDNSSEC{Enabled: false}); err != nil {
				return 0, err
			}
			st, err := p.api.SetDNSSEC(ctx, zoneName, api.PutDNSSEC{Enabled: true, Policy: "nsec3"})
			return st.Serial, err
		}},
		{"add a name under nsec3", func() (uint32, error) {
			r, err := p.api.PutRRset(ctx, zoneName, "x.y", "TXT", api.PutRRset{TTL: ptr(uint32(60)), Records: []string{"\"nsec3\""}}, "")
			return r.Serial, err
		}},
		{"import under nsec3", func() (uint32, error) {
			text := "$ORIGIN " + zoneName + "\n" + strings.Join(baseRecords, "\n") + "\nimported 300 IN AAAA 2001:db8::1\n"
			info, err := p.api.ImportZone(ctx, zoneName, strings.NewReader(text), apiclient.ImportOptions{})
			return info.Serial, err
		}},
	}
	for _, e := range edits {
		serial, err := e.do()
		if err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		p.verify(t, e.name, serial)
	}
}

func ptr[T any](v T) *T { return &v }

// TestSign100k measures signing a large zone through the API and a
// one-record edit of it, beside the same edit of the zone unsigned. It
// runs with DNSSEC_RECORDS set (100000 for the figures of docs/dnssec.md).
func TestSign100k(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("DNSSEC_RECORDS"))
	if n <= 0 {
		t.Skip("set DNSSEC_RECORDS (e.g. 100000) to measure")
	}
	p := startPlane(t)
	// Signing a large zone on a loaded machine takes longer than the
	// client's default minute.
	cl, err := apiclient.New(p.apiURL, token, &http.Client{Timeout: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p.api = cl
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	var text strings.Builder
	text.WriteString("$ORIGIN " + zoneName + "\n" + strings.Join(baseRecords, "\n") + "\n")
	for i := range n - len(baseRecords) {
		fmt.Fprintf(&text, "h%d 300 IN A 198.51.%d.%d\n", i, i/250%256, i%250+1)
	}
	if _, err := p.api.CreateZoneText(ctx, zoneName, strings.NewReader(text.String()), apiclient.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	edit := func(what string, i int) (time.Duration, time.Duration) {
		start := time.Now()
		r, err := p.api.PutRRset(ctx, zoneName, fmt.Sprintf("edit%d", i), "A", api.PutRRset{TTL: ptr(uint32(300)), Records: []string{"192.0.2.99"}}, "")
		if err != nil {
			t.Fatalf("%s edit: %v", what, err)
		}
		apiDur := time.Since(start)
		p.waitSerial(t, zoneName, r.Serial, time.Minute)
		return apiDur, time.Since(start)
	}
	// Unsigned first.
	info, _ := p.api.Zone(ctx, zoneName)
	p.waitSerial(t, zoneName, info.Serial, 5*time.Minute)
	var ua, un []time.Duration
	for i := range 21 {
		a, s := edit("unsigned", i)
		ua, un = append(ua, a), append(un, s)
	}
	start := time.Now()
	st, err := p.api.SetDNSSEC(ctx, zoneName, api.PutDNSSEC{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	enable := time.Since(start)
	p.waitSerial(t, zoneName, st.Serial, 5*time.Minute)
	enableServed := time.Since(start)
	var sa, sn []time.Duration
	for i := range 21 {
		a, s := edit("signed", 100+i)
		sa, sn = append(sa, a), append(sn, s)
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	t.Logf("zone of %d records: enable signing (API answer) %v, served by the node %v", n, enable.Round(time.Millisecond), enableServed.Round(time.Millisecond))
	t.Logf("one-record edit, median of 21: unsigned API %v, answered by the node %v; signed API %v, answered by the node %v",
		med(ua).Round(time.Microsecond), med(un).Round(time.Microsecond), med(sa).Round(time.Microsecond), med(sn).Round(time.Microsecond))
}
