//go:build linux

package steer

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestSignedSteeredAnswers (issue #16 item 5): a control plane that signs,
// a node and a monitor (real anycastd processes). A zone with a failover
// pool (up, first-n over two HTTP endpoints) is signed through anycastctl,
// and a weighted pool is added to it signed. Every answer the node gives
// for the pools to DNSSEC queries validates — each weighted answer over
// 64 ECS subnets against the zone's DNSKEY, the failover and weighted
// answers with delv and the zone's key as trust anchor — and when the
// monitor sees the first failover endpoint down, the node's new answer
// validates too. The control plane's AXFR of the zone passes
// ldns-verify-zone.
func TestSignedSteeredAnswers(t *testing.T) {
	bin, ctlBin := testkit.BuildAnycastd(t), testkit.BuildAnycastctl(t)
	delv := testkit.RequireTool(t, "delv", "bind9-dnsutils")
	dir := t.TempDir()

	var fail atomic.Bool
	h1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "svc ok")
	}))
	t.Cleanup(h1.Close)
	port := h1.Listener.Addr().(*net.TCPAddr).Port
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		t.Skipf("127.0.0.2:%d: %v", port, err)
	}
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "svc ok") }))
	h2.Listener = ln2
	h2.Start()
	t.Cleanup(h2.Close)

	apiAddr, xfrAddr, streamAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	keyFile := filepath.Join(dir, "signing.key")
	write(t, keyFile, string(sign.GenerateKeyFile()))
	ctlCfg := filepath.Join(dir, "control.yaml")
	write(t, ctlCfg, fmt.Sprintf(`data_dir: %q
api: {listen: %q, tokens: [%q]}
xfr:
  listen: [%q]
  tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s}]
  catalog: {zone: catalog.invalid.}
stream: {listen: [%q], heartbeat: 200ms}
signing: {key_file: %q}
`, filepath.Join(dir, "control"), apiAddr, token, xfrAddr, keyName, keySecret, keyName, streamAddr, keyFile))
	run(t, filepath.Join(dir, "control.log"), bin, "control", "-config", ctlCfg)
	waitReady(t, "http://"+apiAddr+"/readyz")

	nodeDNS, nodeAdmin := testkit.FreeAddr(t), testkit.FreeAddr(t)
	nodeCfg := filepath.Join(dir, "pop0.yaml")
	write(t, nodeCfg, fmt.Sprintf(`identity: {name: pop0}
listen: [%q]
admin: {listen: %q}
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: catalog.invalid.
  primaries: [{addr: %q, key: %s}]
control: {servers: ["http://%s"], key: %s, pop: pop0}
drain_period: 0s
`, nodeDNS, nodeAdmin, filepath.Join(dir, "pop0"), keyName, keySecret, xfrAddr, keyName, streamAddr, keyName))
	run(t, filepath.Join(dir, "pop0.log"), bin, "node", "-config", nodeCfg)
	waitReady(t, "http://"+nodeAdmin+"/readyz")

	// TTLs of 20s at most, so that keys can roll in seconds.
	zoneFile := filepath.Join(dir, "example.com.zone")
	write(t, zoneFile, "$ORIGIN example.com.\n@ 20 IN SOA ns1 hostmaster 1 7200 3600 1209600 20\n@ 20 IN NS ns1\nns1 20 IN A 192.0.2.53\n")
	ctl(t, ctlBin, apiAddr, "zone", "create", "example.com", "-file", zoneFile)
	failover := filepath.Join(dir, "failover.json")
	write(t, failover, fmt.Sprintf(`{"ttl": 5, "policy": ["up", "first-n"],
 "check": {"type": "http", "port": %d, "path": "/health", "body": "ok", "interval": "200ms", "timeout": "150ms",
           "rise": 2, "fall": 2, "quorum": 1},
 "endpoints": [{"address": "127.0.0.1"}, {"address": "127.0.0.2"}]}`, port))
	ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "svc", "A", "-file", failover)
	// Signing a zone that has a pool signs its answers (a KSK and a ZSK
	// that rolls every 45s, the pools' TTLs within zone_max_ttl).
	ctl(t, ctlBin, apiAddr, "dnssec", "enable", "example.com", "-settings",
		`{"csk":false,"zsk_lifetime":"45s","dnskey_ttl":"2s","zone_max_ttl":"20s","propagation_delay":"1s"}`)

	// axfrCheck transfers the zone from the control plane and checks it
	// with ldns-verify-zone, kzonecheck and dnssec-verify, and that each
	// pool's name of fallbacks has its fallback answer as an A RRset (a
	// step of "" only reads the zone); it returns the key tag of the ZSK
	// that signs the SOA and the number of DNSKEYs.
	type axfrState struct {
		zsk  uint16
		keys int
	}
	axfrCheck := func(step string, sigs int, fallbacks map[string][]string) axfrState {
		t.Helper()
		m := new(dns.Msg)
		m.SetAxfr("example.com.")
		m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
		tr := &dns.Transfer{TsigSecret: map[string]string{keyName: keySecret}}
		envs, err := tr.In(m, xfrAddr)
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		var st axfrState
		n, answerSigs := 0, 0
		got := map[string][]string{}
		for env := range envs {
			if env.Error != nil {
				t.Fatal(env.Error)
			}
			for _, rr := range env.RR {
				if n++; n > 1 && rr.Header().Rrtype == dns.TypeSOA {
					continue // the closing SOA
				}
				switch v := rr.(type) {
				case *dns.RFC3597:
					if v.Hdr.Rrtype == 65321 && len(v.Rdata) > 6 { // steer.TypePoolSig, not a fallback mark
						answerSigs++
					}
				case *dns.RRSIG:
					if v.TypeCovered == dns.TypeSOA {
						st.zsk = v.KeyTag
					}
				case *dns.DNSKEY:
					st.keys++
				case *dns.A:
					got[strings.TrimSuffix(v.Hdr.Name, ".example.com.")] = append(got[strings.TrimSuffix(v.Hdr.Name, ".example.com.")], v.A.String())
				}
				text.WriteString(rr.String() + "\n")
			}
		}
		if step == "" {
			return st
		}
		if answerSigs != sigs {
			t.Errorf("%s: AXFR: %d answer signatures, want %d (2 failover, 2 weighted answers)", step, answerSigs, sigs)
		}
		for name, want := range fallbacks {
			if g := strings.Join(got[name], ","); !slices.Contains(want, g) {
				t.Errorf("%s: AXFR: A at %s %q, want the pool's fallback, one of %q", step, name, g, want)
			}
		}
		for _, f := range signtest.TextFailures(t, "example.com.", []byte(text.String()), false) {
			t.Errorf("%s: the AXFR does not verify: %s", step, f)
		}
		if t.Failed() {
			t.FailNow()
		}
		return st
	}
	axfrCheck("signing enabled", 2, map[string][]string{"svc": {"127.0.0.1"}})
	weighted := filepath.Join(dir, "weighted.json")
	write(t, weighted, `{"ttl": 20, "policy": ["up", "weighted"],
 "endpoints": [{"address": "192.0.2.1", "weight": 70}, {"address": "192.0.2.2", "weight": 30}]}`)
	// A pool added to the signed zone is signed with the write.
	ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "w", "A", "-file", weighted)
	axfrCheck("weighted pool added", 2+2, map[string][]string{"svc": {"127.0.0.1"}, "w": {"192.0.2.1", "192.0.2.2"}})

	mon := filepath.Join(dir, "m1.yaml")
	write(t, mon, fmt.Sprintf(`vantage: m1
listen: %q
canary_zone: example.com.
interval: 200ms
timeout: 150ms
rise: 1
fall: 2
window: 2s
pops:
  - {name: pop0, dns: %q}
report: {url: "http://%s", token: %q}
`, testkit.FreeAddr(t), nodeDNS, apiAddr, token))
	run(t, filepath.Join(dir, "m1.log"), bin, "monitor", "-config", mon)

	c := &dns.Client{Timeout: 2 * time.Second}
	query := func(name string, qtype uint16, subnet *net.IPNet) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(1232, true)
		if subnet != nil {
			ones, _ := subnet.Mask.Size()
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(ones), Address: subnet.IP})
		}
		r, _, err := c.Exchange(m, nodeDNS)
		return r, err
	}
	// The node serves the signed zone with both pools.
	var keys []*dns.DNSKEY
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := query("w.example.com.", dns.TypeA, nil)
		if err == nil && len(r.Answer) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node does not answer w.example.com. signed: %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r, err := query("example.com.", dns.TypeDNSKEY, nil)
	if err != nil {
		t.Fatal(err)
	}
	anchors := "trust-anchors {\n"
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
			if k.Flags&1 == 1 {
				anchors += fmt.Sprintf("  example.com. static-key %d %d %d %q;\n", k.Flags, k.Protocol, k.Algorithm, k.PublicKey)
			}
		}
	}
	anchors += "};\n"
	anchorFile := filepath.Join(dir, "anchors.conf")
	write(t, anchorFile, anchors)

	// verified returns the addresses of the answer to name (with subnet),
	// after checking each RRSIG of it against the DNSKEYs.
	verified := func(name string, subnet *net.IPNet) string {
		t.Helper()
		r, err := query(name, dns.TypeA, subnet)
		if err != nil {
			t.Fatal(err)
		}
		var set []dns.RR
		var sigs []*dns.RRSIG
		var addrs []string
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *dns.A:
				set, addrs = append(set, rr), append(addrs, v.A.String())
			case *dns.RRSIG:
				sigs = append(sigs, v)
			}
		}
		if len(set) == 0 || len(sigs) == 0 {
			t.Fatalf("%s (%v): answer without data or signature: %v", name, subnet, r)
		}
		for _, sig := range sigs {
			i := slices.IndexFunc(keys, func(k *dns.DNSKEY) bool { return k.KeyTag() == sig.KeyTag })
			if i < 0 {
				t.Fatalf("%s: signed by key %d, not in the DNSKEY RRset", name, sig.KeyTag)
			}
			if err := sig.Verify(keys[i], set); err != nil || !sig.ValidityPeriod(time.Now()) {
				t.Errorf("%s (%v): the signature of %v does not verify: %v", name, subnet, addrs, err)
			}
		}
		return strings.Join(addrs, ",")
	}
	// delvs checks with delv that name A validates, and returns its answer.
	delvs := func(name string) string {
		t.Helper()
		host, p, _ := net.SplitHostPort(nodeDNS)
		out, err := exec.CommandContext(t.Context(), delv, "@"+host, "-p", p, "-a", anchorFile, "+root=example.com", name, "A").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "; fully validated") {
			t.Fatalf("delv %s: %v\n%s", name, err, out)
		}
		var addrs []string
		for line := range strings.Lines(string(out)) {
			if f := strings.Fields(line); len(f) == 5 && f[3] == "A" {
				addrs = append(addrs, f[4])
			}
		}
		return strings.Join(addrs, ",")
	}

	seen := map[string]int{}
	for i := range 64 {
		seen[verified("w.example.com.", cidr(fmt.Sprintf("198.51.%d.0/24", i)))]++
	}
	if seen["192.0.2.1"] == 0 || seen["192.0.2.2"] == 0 || len(seen) != 2 {
		t.Errorf("weighted answers over 64 subnets: %v, want both endpoints", seen)
	}
	t.Logf("weighted answers over 64 subnets, each verified: %v", seen)
	if got := delvs("w.example.com."); got != "192.0.2.1" && got != "192.0.2.2" {
		t.Errorf("delv w.example.com.: %q", got)
	}
	if got := verified("svc.example.com.", nil); got != "127.0.0.1" {
		t.Errorf("failover before: %q, want 127.0.0.1", got)
	}
	if got := delvs("svc.example.com."); got != "127.0.0.1" {
		t.Errorf("delv svc.example.com. before: %q, want 127.0.0.1", got)
	}

	// The first endpoint fails its check: the answer moves, and validates.
	fail.Store(true)
	deadline = time.Now().Add(10 * time.Second)
	for verified("svc.example.com.", nil) != "127.0.0.2" {
		if time.Now().After(deadline) {
			t.Fatalf("the failover answer does not move to 127.0.0.2 after the check failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := delvs("svc.example.com."); got != "127.0.0.2" {
		t.Errorf("delv svc.example.com. after the failure: %q, want 127.0.0.2", got)
	}

	// A change of the weighted pool is signed with the write, and the zone
	// still verifies, its fallback A following the pool.
	write(t, weighted, `{"ttl": 20, "policy": ["up", "weighted"],
 "endpoints": [{"address": "192.0.2.3", "weight": 70}, {"address": "192.0.2.2", "weight": 30}]}`)
	ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "w", "A", "-file", weighted)
	axfrCheck("weighted pool changed", 2+2, map[string][]string{"svc": {"127.0.0.1"}, "w": {"192.0.2.3", "192.0.2.2"}})

	// A ZSK rollover (zsk_lifetime 45s): at each of its stages the zone
	// and the pools' signatures verify.
	zsk0 := axfrCheck("", 0, nil).zsk
	deadline = time.Now().Add(3 * time.Minute)
	for stage := ""; ; {
		a := axfrCheck("", 0, nil)
		if now := fmt.Sprint(a.zsk, a.keys); now != stage {
			stage = now
			a = axfrCheck(fmt.Sprintf("ZSK rollover: %d keys, signing ZSK %d", a.keys, a.zsk), 2+2, map[string][]string{"svc": {"127.0.0.1"}, "w": {"192.0.2.3", "192.0.2.2"}})
			t.Logf("ZSK rollover stage verified: %d DNSKEYs, signing ZSK %d", a.keys, a.zsk)
			if a.zsk != zsk0 && a.keys == 2 {
				break // the old ZSK is gone: KSK and the new ZSK
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ZSK rollover has not ended in 3 minutes (signing ZSK %d, %d keys; first ZSK %d)", a.zsk, a.keys, zsk0)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
