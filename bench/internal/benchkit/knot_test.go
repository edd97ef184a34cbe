package benchkit

import (
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestKnotConfig(t *testing.T) {
	for _, tt := range []struct {
		name      string
		k         Knot
		want, not []string
	}{
		{
			name: "one worker, no journal",
			k:    Knot{OneWorker: true},
			want: []string{"udp-workers: 1", "tcp-workers: 1", "background-workers: 1", "journal-content: none"},
		},
		{
			name: "Knot's workers, journal",
			k:    Knot{Journal: true},
			want: []string{"journal-content: changes"},
			not:  []string{"-workers:"},
		},
		{
			name: "signed",
			k:    Knot{Sign: "    algorithm: ecdsap256sha256\n"},
			want: []string{"background-workers:", "id: bench", "algorithm: ecdsap256sha256", "dnssec-signing: on", "dnssec-policy: bench"},
			not:  []string{"udp-workers:"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := tt.k
			k.Dir = t.TempDir()
			k.Addr = netip.MustParseAddrPort("127.0.0.1:5300")
			k.Origin = "bench.example."
			k.ZonePath = filepath.Join(k.Dir, "bench.example.zone")
			conf := k.Conf()
			for _, want := range append(tt.want, "listen: 127.0.0.1@5300", "zonefile-sync: -1", `listen: "`+k.Socket()+`"`) {
				if !strings.Contains(conf, want) {
					t.Errorf("knot.conf lacks %q:\n%s", want, conf)
				}
			}
			for _, not := range tt.not {
				if strings.Contains(conf, not) {
					t.Errorf("knot.conf has %q:\n%s", not, conf)
				}
			}
			l, err := k.Prepare()
			if err != nil {
				t.Fatal(err)
			}
			if want := "knotd -c " + filepath.Join(k.Dir, "knot.conf"); strings.Join(l.Argv, " ") != want {
				t.Errorf("argv %q, want %q", l.Argv, want)
			}
			NeedTool(t, "knotc")
			if out, err := exec.Command("knotc", "-c", filepath.Join(k.Dir, "knot.conf"), "conf-check").CombinedOutput(); err != nil {
				t.Errorf("knotc conf-check: %v\n%s", err, out)
			}
		})
	}
}
