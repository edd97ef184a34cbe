package benchkit

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Knot describes a knotd serving one zone file, with every file of its own
// (configuration, PID file, control socket, journal and timer databases)
// in Dir.
type Knot struct {
	Dir      string
	Addr     netip.AddrPort
	Origin   string // the zone, dot-terminated
	ZonePath string
	// OneWorker runs one UDP, one TCP and one background worker, for a
	// comparison per core; otherwise Knot sizes them by the CPUs.
	OneWorker bool
	// Journal keeps zone changes in the journal (journal-content: changes,
	// Knot's default), as a zone changed through knotc has it; otherwise
	// none: the zone is loaded from its file and served.
	Journal bool
	// Sign, when set, is the body of a policy (`algorithm: ...` lines,
	// indented for the policy list) that signs the zone (dnssec-signing:
	// on), with a background worker per CPU to sign on.
	Sign string
}

// Socket is the path of knotd's control socket (knotc -s).
func (k Knot) Socket() string { return filepath.Join(k.Dir, "knot.sock") }

// Conf is the text of knotd's configuration. The zone file is never
// written back (zonefile-sync: -1).
func (k Knot) Conf() string {
	var workers string
	if k.OneWorker {
		workers = "    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n"
	}
	journal := "none"
	if k.Journal {
		journal = "changes"
	}
	var policy, signing string
	if k.Sign != "" {
		workers += fmt.Sprintf("    background-workers: %d\n", runtime.NumCPU())
		policy = "policy:\n  - id: bench\n" + k.Sign
		signing = "    dnssec-signing: on\n    dnssec-policy: bench\n"
	}
	return fmt.Sprintf(`server:
    rundir: %[1]q
    pidfile: %[2]q
    listen: %[3]s@%[4]d
    identity: "bench-knot"
%[5]sdatabase:
    storage: %[1]q
control:
    listen: %[6]q
log:
  - target: stderr
    any: warning
%[10]stemplate:
  - id: default
    storage: %[1]q
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: %[7]s
zone:
  - domain: %[8]q
    file: %[9]q
%[11]s`, k.Dir, filepath.Join(k.Dir, "knot.pid"), k.Addr.Addr(), k.Addr.Port(), workers,
		k.Socket(), journal, k.Origin, k.ZonePath, policy, signing)
}

// Prepare writes Dir/knot.conf and returns how to start knotd with it
// (checked by knotc conf-check first when knotc is installed).
func (k Knot) Prepare() (Launch, error) {
	conf := filepath.Join(k.Dir, "knot.conf")
	if err := os.WriteFile(conf, []byte(k.Conf()), 0o600); err != nil {
		return Launch{}, fmt.Errorf("write knot config: %w", err)
	}
	l := Launch{Name: "knot", Argv: []string{"knotd", "-c", conf}}
	if _, err := exec.LookPath("knotc"); err == nil {
		l.Check = []string{"knotc", "-c", conf, "conf-check"}
	}
	return l, nil
}
