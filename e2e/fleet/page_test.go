package fleet

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/announce/bgptest"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// row is a member's line on the fleet page, as its data attributes give it.
type row struct {
	Node      string `json:"node"`
	State     string `json:"state"`
	Health    string `json:"health"`
	Announced string `json:"announced"`
	Level     string `json:"level"`
}

// pageRows reads the page's table and how many times it was redrawn.
const pageRows = `({updates: Number(document.getElementById("updated").dataset.updates || 0),
  rows: [...document.querySelectorAll("#members tr")].map(r => ({node: r.dataset.node, state: r.dataset.state,
    health: r.dataset.health, announced: r.dataset.announced, level: r.dataset.level}))})`

type pageState struct {
	Updates int   `json:"updates"`
	Rows    []row `json:"rows"`
}

func (s pageState) row(node string) row {
	for _, r := range s.Rows {
		if r.Node == node {
			return r
		}
	}
	return row{}
}

// TestFleetPage opens the control plane's fleet page in a real headless
// browser (Debian's chromium; under CI=true a missing browser fails the
// test): with a control plane and two announcing nodes it shows both PoPs
// healthy and announced, and, without a reload, shows one drained and
// withdrawn once its operator drains it. FLEET_SCREENSHOT=docs/fleet.png
// keeps the screenshot for the documentation.
func TestFleetPage(t *testing.T) {
	b := startBrowser(t)
	bin := testkit.BuildAnycastd(t)
	p := newPlane(t, bin, t.TempDir())
	p.start(t, "control.log")
	createZone(t, p.client, "example.org.")
	createZone(t, p.client, "example.net.")
	var nodes []*node
	for _, name := range []string{"ams", "nyc"} {
		port := testkit.FreePort(t)
		n := newNode(t, p, name, port)
		n.start(t, bin)
		lo := netip.MustParseAddr("127.0.0.1")
		r, err := bgptest.Start(bgptest.Config{ASN: routerASN, RouterID: netip.MustParseAddr("192.0.2.254"), Local: lo,
			Speaker: lo, SpeakerPort: port, SpeakerASN: nodeASN})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		nodes = append(nodes, n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	b.navigate(fmt.Sprintf("http://%s%s#token=%s", p.api, fleet.PagePath, token))
	st := waitPage(ctx, t, b, "both PoPs healthy and announced", pageRows, func(s pageState) bool {
		return len(s.Rows) == 2 && s.row("ams").Health == "healthy" && s.row("ams").Announced == "1" &&
			s.row("nyc").Health == "healthy" && s.row("nyc").Announced == "1" && s.row("nyc").Level == "normal"
	})
	var hash string
	if err := b.eval("location.hash", &hash); err != nil || hash != "" {
		t.Errorf("the token stays in the address bar: %q (%v)", hash, err)
	}

	// Drain nyc: the open page shows it at its next refresh.
	resp, err := http.Post("http://"+nodes[1].admin+"/v1/drain", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drain: %s", resp.Status)
	}
	drained := time.Now()
	after := waitPage(ctx, t, b, "nyc drained and withdrawn", pageRows, func(s pageState) bool {
		return s.row("nyc").Health == "drained" && s.row("nyc").Announced == "0" && s.row("nyc").Level == "withdrawn" &&
			s.row("ams").Health == "healthy"
	})
	t.Logf("the page showed the drain %v after it (redrawn %d times meanwhile)", time.Since(drained).Round(time.Millisecond), after.Updates-st.Updates)
	if after.Updates <= st.Updates {
		t.Errorf("the page was not redrawn (%d, then %d updates): it was reloaded?", st.Updates, after.Updates)
	}
	time.Sleep(300 * time.Millisecond) // the summary line follows the table
	shot := b.screenshot()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if w := img.Bounds().Dx(); w < 800 {
		t.Errorf("screenshot %d pixels wide", w)
	}
	writeScreenshot(t, shot)
}
