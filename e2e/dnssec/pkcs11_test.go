//go:build linux

package dnssec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const tokenLabel = "anycastdns-e2e"

// startControl starts the control plane again with the arguments and log
// of its first start, and waits until its API answers.
func (p *plane) startControl(t *testing.T) {
	t.Helper()
	p.ctl = testkit.StartProcess(t, "control", p.ctlLog, p.ctlArgv...)
	p.ctl.StopAfter, p.ctl.CheckExit = 20*time.Second, true
	testkit.WaitHTTP(t, p.apiURL+api.PathZones, 15*time.Second)
}

// storedKeys returns what the control plane's backup (GET /v1/backup, the
// rows of its database) holds of each signing key of zone, opened with
// the key file: the JSON the sealer sealed.
func (p *plane) storedKeys(t *testing.T, zone string) map[string]string {
	t.Helper()
	var b bytes.Buffer
	if err := p.api.Backup(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	sealer, err := sign.LoadSealer(p.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(&b)
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var line struct {
			Zone *struct {
				Name    string `json:"name"`
				Signing *struct {
					Keys []struct {
						ID     string `json:"id"`
						Sealed []byte `json:"sealed"`
					} `json:"keys"`
				} `json:"signing"`
			} `json:"zone"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if line.Zone == nil || line.Zone.Signing == nil || line.Zone.Name != zone {
			continue
		}
		for _, k := range line.Zone.Signing.Keys {
			plain, err := sealer.Open(k.Sealed, zone+" "+k.ID)
			if err != nil {
				t.Fatalf("key %s: %v", k.ID, err)
			}
			out[k.ID] = string(plain)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dnskeys returns the zone's DNSKEY records as the control plane serves
// them, sorted.
func (p *plane) dnskeys(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, rr := range p.axfr(t, zoneName) {
		if k, ok := rr.(*dns.DNSKEY); ok {
			out = append(out, k.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestPKCS11Signing: `anycastd control` with signing.pkcs11 (a SoftHSM
// token) signs a zone that validates as the node serves it; the database
// keeps references to the keys in the token, no private key; after a
// restart the same keys sign an edit that validates; a wrong PIN stops the
// control plane at start-up with an error that names the field.
func TestPKCS11Signing(t *testing.T) {
	signtest.SoftHSM(t, tokenLabel) // SOFTHSM2_CONF for the processes started below
	pinFile := filepath.Join(t.TempDir(), "token.pin")
	writeFile(t, pinFile, signtest.SoftHSMPIN+"\n", 0o600)
	p := startPlaneWith(t, fmt.Sprintf("  pkcs11: {module: %q, token_label: %q, pin_file: %q}\n", signtest.SoftHSMModule, tokenLabel, pinFile))
	ctx := t.Context()
	if _, err := p.api.CreateZone(ctx, api.CreateZone{Name: zoneName, Records: baseRecords}); err != nil {
		t.Fatal(err)
	}
	st, err := p.api.SetDNSSEC(ctx, zoneName, api.PutDNSSEC{Enabled: true, Policy: "nsec3"})
	if err != nil {
		t.Fatal(err)
	}
	p.verify(t, "enable (nsec3, ksk+zsk, keys in the token)", st.Serial)
	keys := p.storedKeys(t, zoneName)
	if len(keys) != 2 {
		t.Fatalf("%d keys stored, want a KSK and a ZSK", len(keys))
	}
	for id, plain := range keys {
		if strings.Contains(plain, "private_pkcs8") || !strings.Contains(plain, fmt.Sprintf(`"pkcs11":{"token":%q`, tokenLabel)) {
			t.Errorf("key %s as the database keeps it is not a reference to the token: %s", id, plain)
		}
	}
	before := p.dnskeys(t)

	// A restart: the same keys, from the token, sign on.
	if err := p.ctl.Stop(t); err != nil {
		t.Fatalf("control plane stop: %v", err)
	}
	p.startControl(t)
	r, err := p.api.PutRRset(ctx, zoneName, "after-restart", "TXT", api.PutRRset{TTL: ptr(uint32(300)), Records: []string{`"signed by the token"`}}, "")
	if err != nil {
		t.Fatal(err)
	}
	p.verify(t, "edit after a restart", r.Serial)
	if after := p.dnskeys(t); !slices.Equal(before, after) {
		t.Errorf("the DNSKEY RRset changed across the restart:\n%v\n%v", before, after)
	}

	// A wrong PIN: the control plane does not start, and says why.
	if err := p.ctl.Stop(t); err != nil {
		t.Fatalf("control plane stop: %v", err)
	}
	writeFile(t, pinFile, "9999\n", 0o600)
	logLen := len(p.ctl.Log())
	bad := testkit.StartProcess(t, "control (wrong PIN)", p.ctlLog, p.ctlArgv...)
	select {
	case <-bad.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the control plane runs with a wrong PIN")
	}
	if bad.Err() == nil {
		t.Error("the control plane exited 0 with a wrong PIN")
	}
	if out := bad.Log()[logLen:]; !strings.Contains(out, "signing.pkcs11") || !strings.Contains(out, "wrong PIN") {
		t.Errorf("start-up with a wrong PIN says:\n%s", out)
	}
	if err := os.WriteFile(pinFile, []byte(signtest.SoftHSMPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.startControl(t)
	if got := p.dnskeys(t); !slices.Equal(before, got) {
		t.Errorf("the DNSKEY RRset changed:\n%v\n%v", before, got)
	}
}
