package control

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/xfrout"
)

// TestXfrConfig: the xfr section of a control configuration makes a
// transfer server configuration it accepts, keys, ACL, targets and
// catalog included.
func TestXfrConfig(t *testing.T) {
	c, err := config.LoadControl("../../config/testdata/control/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !hasXfr(c) {
		t.Fatal("hasXfr = false with xfr.listen set")
	}
	x := xfrConfig(c, nil)
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := xfrout.New(x, st, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("the transfer configuration of a valid control plane is invalid: %v", err)
	}
	if len(x.Listen) != 2 || len(x.Keys) != 2 || len(x.AllowTransfer) != 2 || x.AllowTransfer[0].Key != "xfr-key." ||
		len(x.Notify) != 2 || x.Notify[1].Addr != netip.MustParseAddrPort("[2001:db8::10]:5353") || x.Catalog != "catalog.invalid." {
		t.Errorf("xfrConfig = %+v", x)
	}
	if _, _, err := storeOptions(c); err == nil || !strings.Contains(err.Error(), "signing.key_file") {
		t.Errorf("storeOptions with a key file that is not there: %v", err)
	}
	c.Signing.KeyFile = writeKeyFile(t)
	if _, _, err := storeOptions(c); err == nil || !strings.Contains(err.Error(), "signing.pkcs11.pin_file") {
		t.Errorf("storeOptions with a PIN file that is not there: %v", err)
	}
	c.Signing.PKCS11 = nil
	if opts, _, err := storeOptions(c); err != nil || len(opts) != 3 {
		t.Errorf("storeOptions: %d, %v", len(opts), err)
	}
	if a := apiConfig(c); len(a.Tokens) != 2 || a.MaxBody != 1048576 {
		t.Errorf("apiConfig = %+v", a)
	}
	c.Xfr = config.Xfr{}
	if hasXfr(c) {
		t.Error("hasXfr = true without xfr.listen")
	}
}
