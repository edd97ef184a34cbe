//go:build linux

package standalone

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyModule copies the module's source tree (not .git, bin or data
// directories) to dst. In a git worktree .git is a file pointing at the
// real repository: it must not be copied either, or git commands in dst
// would act on that repository.
func copyModule(t *testing.T, dst string) {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch d.Name() {
		case ".git", "bin", "anycastdns-data":
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy the module: %v", err)
	}
}

// git runs git on the repository dir/.git only, whatever surrounds dir.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_DIR="+filepath.Join(dir, ".git"), "GIT_WORK_TREE="+dir,
		"GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestVersionFromBuildInfo builds both binaries from a git checkout of
// this source tree, VCS stamping on, and checks that "version" prints the
// checkout's revision and Go version, not a placeholder. (A fresh checkout:
// the go command stamps nothing in a git worktree.)
func TestVersionFromBuildInfo(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to build a binary stamped with a revision")
	}
	src := filepath.Join(t.TempDir(), "src")
	copyModule(t, src)
	if _, err := os.Lstat(filepath.Join(src, ".git")); err == nil {
		t.Fatal("the copy has a .git of its own")
	}
	git(t, src, "init", "-q")
	git(t, src, "add", "-A")
	git(t, src, "commit", "-q", "-m", "version test")
	rev := git(t, src, "rev-parse", "HEAD")[:12]
	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"anycastd", "anycastctl"} {
		bin := filepath.Join(t.TempDir(), name)
		build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/"+name)
		build.Dir = src
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", name, err)
		}
		line := strings.TrimSpace(string(out))
		t.Logf("%s", line)
		// go1.24+ makes a pseudo-version from the commit: v0.0.0-DATE-REV.
		if !strings.HasPrefix(line, name+" v0.0.0-") {
			t.Errorf("%s version printed %q: want the module's pseudo-version", name, line)
		}
		if !strings.Contains(line, "revision "+rev) {
			t.Errorf("%s version printed %q: want the revision %s", name, line, rev)
		}
		if !strings.Contains(line, strings.TrimSpace(string(goVersion))) {
			t.Errorf("%s version printed %q: want the Go version %s", name, line, strings.TrimSpace(string(goVersion)))
		}
	}
}
