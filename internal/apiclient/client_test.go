package apiclient_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/role/control"
	"github.com/anycastdns/anycastdns/internal/store"
)

const token = "client-test-token-0123"

func newClient(t *testing.T) *apiclient.Client {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "zones.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(control.NewBackend(s), api.Config{Tokens: []string{token}}, nil))
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	c, err := apiclient.New(srv.URL, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const zoneText = `$ORIGIN 0/25.2.0.192.in-addr.arpa.
@	3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300
	3600 IN NS ns1.example.com.
1	3600 IN PTR host1.example.com.
`

// TestClient runs every method against the real handler and store, on a
// zone whose name needs escaping in paths (RFC 2317 "/").
func TestClient(t *testing.T) {
	ctx := t.Context()
	c := newClient(t)
	const zone = "0/25.2.0.192.in-addr.arpa."
	info, err := c.CreateZoneText(ctx, zone, strings.NewReader(zoneText), apiclient.CreateOptions{SerialPolicy: "date"})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != zone || info.SerialPolicy != "date" || info.Records != 3 {
		t.Errorf("created %+v", info)
	}
	if _, err := c.CreateZone(ctx, api.CreateZone{Name: "example.com", Records: []string{
		"@ SOA ns1 hostmaster 1 7200 3600 1209600 300", "@ NS ns1", "ns1 A 192.0.2.1",
	}}); err != nil {
		t.Fatal(err)
	}
	zones, err := c.ListZones(ctx)
	if err != nil || len(zones) != 2 {
		t.Fatalf("ListZones = %v, %v", zones, err)
	}
	set, tag, err := c.RRset(ctx, zone, "1", "PTR")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(api.RRset{Name: "1." + zone, Type: "PTR", TTL: 3600, Records: []string{"host1.example.com."}}, set); diff != "" {
		t.Errorf("RRset (-want +got):\n%s", diff)
	}
	res, err := c.SetRRset(ctx, zone, "1", "PTR", api.RRset{TTL: 60, Records: []string{"host2.example.com."}}, tag)
	if err != nil {
		t.Fatal(err)
	}
	if res.Serial <= info.Serial || res.RRset == nil || res.RRset.Records[0] != "host2.example.com." {
		t.Errorf("SetRRset = %+v", res)
	}
	if _, err := c.SetRRset(ctx, zone, "1", "PTR", api.RRset{TTL: 60, Records: []string{"host3.example.com."}}, tag); !errors.Is(err, apiclient.ErrPrecondition) {
		t.Errorf("SetRRset with a stale ETag: %v", err)
	}
	sets, err := c.RRsets(ctx, zone, "1")
	if err != nil || len(sets) != 1 {
		t.Errorf("RRsets at 1: %v %v", sets, err)
	}
	z, err := c.Zone(ctx, zone)
	if err != nil || len(z.RRsets) != 3 || z.Serial != res.Serial {
		t.Errorf("Zone = %+v, %v", z, err)
	}
	var buf bytes.Buffer
	if err := c.ExportZone(ctx, zone, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "1.0/25.2.0.192.in-addr.arpa.\t60\tIN\tPTR\thost2.example.com.") {
		t.Errorf("export:\n%s", buf.String())
	}
	imported, err := c.ImportZone(ctx, zone, strings.NewReader(zoneText+"2 PTR host2.example.com.\n"), apiclient.ImportOptions{})
	if err != nil || imported.Records != 4 {
		t.Errorf("ImportZone = %+v, %v", imported, err)
	}
	if _, err := c.DeleteRRset(ctx, zone, "2", "PTR", ""); err != nil {
		t.Error(err)
	}
	if err := c.DeleteZone(ctx, zone); err != nil {
		t.Fatal(err)
	}

	errTests := []struct {
		name string
		do   func() error
		is   error
		msg  string
	}{
		{"not found", func() error { _, err := c.Zone(ctx, zone); return err }, apiclient.ErrNotFound,
			"GET " + "http://", /* host varies */
		},
		{"exists", func() error {
			_, err := c.CreateZone(ctx, api.CreateZone{Name: "example.com", Records: []string{"@ SOA ns1 h 1 2 3 4 5", "@ NS ns1", "ns1 A 192.0.2.1"}})
			return err
		}, apiclient.ErrExists, "zone example.com.: already exists (http 409)"},
		{"invalid", func() error {
			_, err := c.SetRRset(ctx, "example.com", "www", "A", api.RRset{TTL: 1, Records: []string{"x"}}, "")
			return err
		}, apiclient.ErrInvalid, `records[0]: invalid A record "x"`},
		{"missing rrset", func() error { _, _, err := c.RRset(ctx, "example.com", "nope", "A"); return err }, apiclient.ErrNotFound, "rrset nope.example.com. A: not found"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			var ae *apiclient.Error
			if !errors.Is(err, tt.is) || !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want %v containing %q", err, tt.is, tt.msg)
			}
		})
	}
}

func TestClientAuthAndURL(t *testing.T) {
	ctx := t.Context()
	for _, bad := range []string{"ftp://x", "http://", "http://h:1/?q=1", "::"} {
		if _, err := apiclient.New(bad, token, nil); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := apiclient.New("127.0.0.1:1", "", nil); err == nil {
		t.Error("New without a token accepted")
	}

	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "z.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(api.Handler(control.NewBackend(s), api.Config{Tokens: []string{token}}, nil))
	defer srv.Close()
	wrong, err := apiclient.New(srv.URL+"/", "wrong-token-0123456789", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.ListZones(ctx); !errors.Is(err, apiclient.ErrUnauthorized) {
		t.Errorf("wrong token: %v", err)
	}
	dead, _ := apiclient.New("http://127.0.0.1:1", token, nil)
	if _, err := dead.ListZones(ctx); err == nil || !strings.HasPrefix(err.Error(), "GET http://127.0.0.1:1/v1/zones: ") {
		t.Errorf("connection refused: %v", err)
	}
}

// TestClientRootAndTopLevelZones creates the root and top-level zones, which
// need AllowTLD, and deletes them: the root's path must survive the HTTP
// client, which takes "/v1/zones/." for "/v1/zones".
func TestClientRootAndTopLevelZones(t *testing.T) {
	ctx := t.Context()
	c := newClient(t)
	const soaNS = "@ 3600 IN SOA ns1.example.net. h.example.net. 1 7200 3600 1209600 300\n@ 3600 IN NS ns1.example.net.\n"
	creates := []struct {
		zone   string
		create func(allow bool) error
	}{
		{".", func(allow bool) error {
			_, err := c.CreateZone(ctx, api.CreateZone{Name: ".", AllowTLD: allow, Records: strings.Split(strings.TrimSpace(soaNS), "\n")})
			return err
		}},
		{"test.", func(allow bool) error {
			_, err := c.CreateZoneText(ctx, "test", strings.NewReader(soaNS), apiclient.CreateOptions{AllowTLD: allow})
			return err
		}},
		{"example.", func(allow bool) error {
			_, err := c.ImportZone(ctx, "example.", strings.NewReader(soaNS), apiclient.ImportOptions{AllowTLD: allow})
			return err
		}},
	}
	for _, cr := range creates {
		if err := cr.create(false); !errors.Is(err, apiclient.ErrInvalid) || !strings.Contains(err.Error(), "allow_tld") {
			t.Errorf("create %s without AllowTLD: %v, want ErrInvalid naming allow_tld", cr.zone, err)
		}
		if err := cr.create(true); err != nil {
			t.Errorf("create %s with AllowTLD: %v", cr.zone, err)
		}
		if z, err := c.Zone(ctx, cr.zone); err != nil || z.Name != cr.zone {
			t.Errorf("Zone(%s) = %+v, %v", cr.zone, z.ZoneInfo, err)
		}
		if err := c.DeleteZone(ctx, cr.zone); err != nil {
			t.Errorf("DeleteZone(%s): %v", cr.zone, err)
		}
		if _, err := c.Zone(ctx, cr.zone); !errors.Is(err, apiclient.ErrNotFound) {
			t.Errorf("Zone(%s) after its delete: %v", cr.zone, err)
		}
	}
}

// TestClientPutRRset writes RRsets with and without a TTL.
func TestClientPutRRset(t *testing.T) {
	ctx := t.Context()
	c := newClient(t)
	if _, err := c.CreateZoneText(ctx, "example.com", strings.NewReader("$TTL 900\n@ SOA ns1.example.net. h.example.net. 1 7200 3600 1209600 300\n@ NS ns1.example.net.\n"),
		apiclient.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ttl := uint32(60)
	for i, step := range []struct {
		set  api.PutRRset
		want uint32
	}{
		{api.PutRRset{Records: []string{"192.0.2.1"}}, 900},
		{api.PutRRset{TTL: &ttl, Records: []string{"192.0.2.1"}}, 60},
		{api.PutRRset{Records: []string{"192.0.2.2"}}, 60},
	} {
		res, err := c.PutRRset(ctx, "example.com", "www", "A", step.set, "")
		if err != nil || res.RRset == nil || res.RRset.TTL != step.want {
			t.Errorf("step %d: %+v, %v; want TTL %d", i, res.RRset, err, step.want)
		}
	}
}
