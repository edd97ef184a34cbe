package packaging

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// What the package holds: path → mode (as dpkg-deb -c prints it).
var debFiles = map[string]string{
	"./usr/bin/anycastd":                                 "-rwxr-xr-x",
	"./usr/bin/anycastctl":                               "-rwxr-xr-x",
	"./usr/bin/anycastlab":                               "-rwxr-xr-x",
	"./usr/lib/systemd/system/anycastd-node.service":     "-rw-r--r--",
	"./usr/lib/systemd/system/anycastd-control.service":  "-rw-r--r--",
	"./usr/lib/systemd/system/anycastd-monitor.service":  "-rw-r--r--",
	"./etc/anycastd/node.yaml":                           "-rw-r-----",
	"./etc/anycastd/control.yaml":                        "-rw-r-----",
	"./etc/anycastd/monitor.yaml":                        "-rw-r-----",
	"./etc/anycastd/zones/example.com.zone":              "-rw-r--r--",
	"./usr/share/man/man8/anycastd.8.gz":                 "-rw-r--r--",
	"./usr/share/man/man1/anycastctl.1.gz":               "-rw-r--r--",
	"./usr/share/man/man1/anycastlab.1.gz":               "-rw-r--r--",
	"./usr/share/bash-completion/completions/anycastctl": "-rw-r--r--",
	"./usr/share/bash-completion/completions/anycastd":   "-rw-r--r--",
	"./usr/share/doc/anycastdns/README.md":               "-rw-r--r--",
	"./usr/share/doc/anycastdns/examples/node.yaml":      "-rw-r--r--",
}

var conffiles = []string{
	"/etc/anycastd/control.yaml",
	"/etc/anycastd/monitor.yaml",
	"/etc/anycastd/node.yaml",
	"/etc/anycastd/zones/example.com.zone",
}

// make deb builds a package with the binaries, units, configuration
// (conffiles), man pages and completions, and a postinst; as root it
// installs into an empty root (dpkg --root) where the units' command lines
// run: checkconf as the anycastd user, and the node unit's ExecStart, with
// only CAP_NET_BIND_SERVICE, serving DNS on port 53 in a network
// namespace. systemd cannot run here; that run is the equivalent check of
// "the unit starts a node".
func TestDeb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package (make deb)")
	}
	makeTool := testkit.RequireTool(t, "make", "make")
	dpkgDeb := testkit.RequireTool(t, "dpkg-deb", "dpkg")
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	deb := filepath.Join(dir, "anycastdns.deb")
	// A cold build cache compiles nfpm and every package without cgo.
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, makeTool, "-C", repo, "deb", "BIN="+filepath.Join(dir, "bin"), "DEB="+deb)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}

	info := run(t, dpkgDeb, "-I", deb)
	for _, re := range []string{
		`(?m)^ Package: anycastdns$`,
		`(?m)^ Version: [0-9][A-Za-z0-9.+~]*$`,
		`(?m)^ Architecture: ` + runtime.GOARCH + `$`,
		`(?m)^ Depends: passwd$`,
		`(?m)^ Section: net$`,
		`(?m)^ +[0-9]+ bytes, +[0-9]+ lines +\* +postinst +#!/bin/sh$`,
	} {
		if !regexp.MustCompile(re).MatchString(info) {
			t.Errorf("dpkg-deb -I lacks %s:\n%s", re, info)
		}
	}
	if got := strings.Fields(run(t, dpkgDeb, "-f", deb, "Version")); len(got) != 1 {
		t.Errorf("version %q", got)
	}
	ctrl := filepath.Join(dir, "control")
	run(t, dpkgDeb, "-e", deb, ctrl)
	cf, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(cf)); !slices.Equal(got, conffiles) {
		t.Errorf("conffiles %q, want %q", got, conffiles)
	}

	listing := map[string]string{}
	for l := range strings.SplitSeq(run(t, dpkgDeb, "-c", deb), "\n") {
		if f := strings.Fields(l); len(f) == 6 {
			listing[f[5]] = f[0] + " " + f[1]
		}
	}
	for path, mode := range debFiles {
		if got, want := listing[path], mode+" root/root"; got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}

	// The contents, unpacked: units as in the tree, man pages, static
	// binaries (nothing else is needed to run them).
	x := filepath.Join(dir, "x")
	run(t, dpkgDeb, "-x", deb, x)
	for _, role := range roles {
		want, _ := os.ReadFile(unitPath(role))
		got, _ := os.ReadFile(filepath.Join(x, "usr/lib/systemd/system", filepath.Base(unitPath(role))))
		if !bytes.Equal(got, want) || len(got) == 0 {
			t.Errorf("installed unit of %s differs from %s", role, unitPath(role))
		}
	}
	for page, th := range map[string]string{
		"usr/share/man/man8/anycastd.8.gz":   ".TH ANYCASTD 8",
		"usr/share/man/man1/anycastctl.1.gz": ".TH ANYCASTCTL 1",
		"usr/share/man/man1/anycastlab.1.gz": ".TH ANYCASTLAB 1",
	} {
		if text := gunzip(t, filepath.Join(x, page)); !strings.Contains(text, th) || !strings.Contains(text, ".SH COMMANDS") {
			t.Errorf("%s: not a man page with commands:\n%.300s", page, text)
		}
	}
	for _, b := range []string{"anycastd", "anycastctl", "anycastlab"} {
		f, err := elf.Open(filepath.Join(x, "usr/bin", b))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: it needs a C library in the root", b)
			}
		}
		_ = f.Close()
	}

	testkit.RequireRoot(t, "dpkg --root installs with file owners, chroot, network namespaces")
	installed := installInto(t, deb, dir)
	checkInstalled(t, installed, dir)
}

// installInto installs the package into an empty root, as dpkg does on a
// host (maintainer scripts with DPKG_ROOT, not chrooted: the root has no
// shell), and returns the root.
func installInto(t *testing.T, deb, dir string) string {
	dpkg := testkit.RequireTool(t, "dpkg", "dpkg")
	root := filepath.Join(dir, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"var/lib/dpkg/status": "", "var/lib/dpkg/available": "",
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\n", "etc/gshadow": "root:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The root has no passwd package: dependencies are forced; the
	// postinst uses the host's useradd on the root's user database.
	out := run(t, dpkg, "--root="+root, "--force-script-chrootless", "--force-depends", "-i", deb)
	t.Logf("dpkg -i:\n%s", out)
	if status := run(t, dpkg, "--root="+root, "-s", "anycastdns"); !strings.Contains(status, "Status: install ok installed") {
		t.Fatalf("not installed:\n%s", status)
	}
	return root
}

func checkInstalled(t *testing.T, root, dir string) {
	uid, gid := lookupIDs(t, root)
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if !regexp.MustCompile(`(?m)^anycastd:x:[0-9]+:[0-9]+:[^:]*:/var/lib/anycastd:/usr/sbin/nologin$`).Match(passwd) {
		t.Errorf("no anycastd system user:\n%s", passwd)
	}
	for path, want := range map[string]struct {
		mode     os.FileMode
		uid, gid int
	}{
		"etc/anycastd/api.token":    {0o640, 0, gid},
		"etc/anycastd/node.yaml":    {0o640, 0, gid},
		"etc/anycastd/control.yaml": {0o640, 0, gid},
		"var/lib/anycastd":          {0o750 | os.ModeDir, 0, gid},
		"var/lib/anycastd/node":     {0o750 | os.ModeDir, uid, gid},
		"var/lib/anycastd/control":  {0o750 | os.ModeDir, uid, gid},
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != want.mode || int(st.Uid) != want.uid || int(st.Gid) != want.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", path, fi.Mode(), st.Uid, st.Gid, want.mode, want.uid, want.gid)
		}
	}

	// Each unit's ExecStartPre, as the unit runs it: the anycastd user,
	// in the installed root; the control plane's reads the postinst's token.
	for _, role := range roles {
		u := parseUnit(t, filepath.Join(root, "usr/lib/systemd/system", filepath.Base(unitPath(role))))
		argv := strings.Fields(u.get(t, "Service", "ExecStartPre"))
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = "/"
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "valid "+role+" configuration") {
			t.Errorf("%s ExecStartPre %q in the installed root: %v\n%s", role, argv, err, out)
		}
	}
	if analyze, err := testkit.LookTool("systemd-analyze"); err == nil {
		kill, err := exec.LookPath("kill")
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, kill, filepath.Join(root, "bin/kill"), 0o755)
		copyTargets(t, filepath.Join(root, "usr/lib/systemd/system"))
		verify(t, analyze, root, filepath.Join(root, "usr/lib/systemd/system"))
	}

	runNodeUnit(t, root, uid, gid)

	dpkg := testkit.RequireTool(t, "dpkg", "dpkg")
	run(t, dpkg, "--root="+root, "--force-script-chrootless", "--purge", "anycastdns")
	for _, p := range []string{"usr/bin/anycastd", "etc/anycastd", "var/lib/anycastd", "usr/lib/systemd/system/anycastd-node.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left after purge (%v)", p, err)
		}
	}
	_ = dir
}

// runNodeUnit starts the node unit's ExecStart as systemd would (the
// anycastd user, CAP_NET_BIND_SERVICE as its only capability, the installed
// configuration) in the installed root and a network namespace of its own,
// and queries it on port 53. Without the capability the same command
// fails to bind: the unit needs it, and nothing more.
func runNodeUnit(t *testing.T, root string, uid, gid int) {
	ip := testkit.RequireTool(t, "ip", "iproute2")
	kdig := testkit.RequireTool(t, "kdig", "knot-dnsutils")
	ns := fmt.Sprintf("acpkg%d", os.Getpid())
	run(t, ip, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "delete", ns).Run() })
	run(t, ip, "-n", ns, "link", "set", "lo", "up")

	u := parseUnit(t, filepath.Join(root, "usr/lib/systemd/system/anycastd-node.service"))
	argv := strings.Fields(u.get(t, "Service", "ExecStart"))
	ambient := []uintptr{}
	for c := range strings.FieldsSeq(u.get(t, "Service", "AmbientCapabilities")) {
		if c != "CAP_NET_BIND_SERVICE" {
			t.Fatalf("the test knows CAP_NET_BIND_SERVICE only, the unit has %s", c)
		}
		ambient = append(ambient, unix.CAP_NET_BIND_SERVICE)
	}
	if len(ambient) == 0 {
		t.Fatal("the node unit has no AmbientCapabilities")
	}

	t.Run("without-capability", func(t *testing.T) {
		log := &testkit.Log{}
		cmd := nodeCommand(argv, root, uid, gid, nil, log)
		if err := startInNetns(t, ns, cmd); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(log.String(), "permission denied") {
				t.Errorf("exit %v without CAP_NET_BIND_SERVICE, want a bind failure:\n%s", err, log)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("the node bound port 53 without CAP_NET_BIND_SERVICE:\n%s", log)
		}
	})

	log := &testkit.Log{}
	cmd := nodeCommand(argv, root, uid, gid, ambient, log)
	if err := startInNetns(t, ns, cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	var answer string
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command(ip, "netns", "exec", ns, kdig, "@127.0.0.1", "-p", "53", "+nsid", "+timeout=1", "+retry=0", "example.com", "SOA").CombinedOutput()
		answer = string(out)
		if err == nil && strings.Contains(answer, "status: NOERROR") {
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("the node exited: %v\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on 127.0.0.1:53: %v\n%s\nlog:\n%s", err, answer, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, want := range []string{"Flags: qr aa", "example.com.", "SOA", `NSID: 706F702D31 "pop-1"`} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q:\n%s", want, answer)
		}
	}
	// The unit's reload: checkconf (as above), then SIGHUP; the node
	// re-reads its configuration and zones as the anycastd user.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), `msg=reloaded component=node zones=1 failed=0`); {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("node exit after SIGTERM: %v\n%s", err, log)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the node did not stop on SIGTERM:\n%s", log)
	}
}

// nodeCommand is the unit's command line as systemd starts it: in root,
// as the anycastd user and group, with the ambient capabilities given.
func nodeCommand(argv []string, root string, uid, gid int, ambient []uintptr, log io.Writer) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:      root,
		Credential:  &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		AmbientCaps: ambient,
	}
	return cmd
}

// startInNetns starts cmd in the network namespace ns: from an OS thread
// that entered it, which the child inherits; the thread is then left to
// end with its goroutine.
func startInNetns(t *testing.T, ns string, cmd *exec.Cmd) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the namespace's stead
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer func() { _ = f.Close() }()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

func lookupIDs(t *testing.T, root string) (uid, gid int) {
	t.Helper()
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(passwd), "\n") {
		f := strings.Split(l, ":")
		if len(f) >= 4 && f[0] == "anycastd" {
			u, err1 := strconv.Atoi(f[2])
			g, err2 := strconv.Atoi(f[3])
			if err1 == nil && err2 == nil {
				return u, g
			}
		}
	}
	t.Fatalf("no anycastd user in %s/etc/passwd:\n%s", root, passwd)
	return 0, 0
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func gunzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return string(b)
}
