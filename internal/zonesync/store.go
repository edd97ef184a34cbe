package zonesync

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// store keeps transferred zones in dir: NAME.zone (master file) and
// NAME.state (JSON), each replaced atomically (temporary file, fsync,
// rename, fsync of the directory).
//
// The directory fsyncs of concurrent writes are shared (group commit): a
// write waits for one that started after its rename, and one fsync covers
// every rename before it. A new node persisting 10,000 zones would
// otherwise spend most of its time in fsyncs of the same directory.
type store struct {
	dir  string
	sync groupSync
}

// groupSync runs fsyncs of one directory on behalf of concurrent callers.
type groupSync struct {
	dir     string
	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	started uint64 // fsyncs started
	done    uint64 // the last fsync finished
	err     error  // its result
}

// sync returns once an fsync of the directory that started after the call
// has finished, with its result.
func (g *groupSync) sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// One in progress may have started before our rename: the next one
	// covers it.
	want := g.started + 1
	for g.done < want {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		n := g.started
		g.mu.Unlock()
		err := syncDir(g.dir)
		g.mu.Lock()
		g.running, g.done, g.err = false, n, err
		g.cond.Broadcast()
	}
	return g.err
}

// state is what a zone's .state file holds.
type state struct {
	Zone        string    `json:"zone"`
	Serial      uint32    `json:"serial"`
	LastRefresh time.Time `json:"last_refresh"` // last time a primary confirmed this serial
	Primary     string    `json:"primary,omitempty"`
	// Catalog names the catalog zone the zone is a member of, MemberID its
	// unique id there; empty for configured zones.
	Catalog  string `json:"catalog,omitempty"`
	MemberID string `json:"member_id,omitempty"`
}

func newStore(dataDir string) (*store, error) {
	dir := filepath.Join(dataDir, "zones")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st := &store{dir: dir}
	st.sync.dir = dir
	st.sync.cond = sync.NewCond(&st.sync.mu)
	return st, nil
}

// fileName turns a zone name into a file name: lower case without the final
// dot; bytes other than letters, digits, '-' and '.' as %XX; the root as
// "%2E" (no other name gives it).
func fileName(name string) string {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		return "%2E"
	}
	var b strings.Builder
	for _, c := range []byte(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (s *store) zonePath(name string) string {
	return filepath.Join(s.dir, fileName(name)+".zone")
}

func (s *store) statePath(name string) string {
	return filepath.Join(s.dir, fileName(name)+".state")
}

// save writes the zone and its state.
func (s *store) save(z *zone.Zone, st state) error {
	if err := s.writeAtomic(s.zonePath(z.Origin), func(w io.Writer) error {
		_, err := z.WriteTo(w)
		return err
	}); err != nil {
		return fmt.Errorf("persist %s: %w", z.Origin, err)
	}
	return s.saveState(st)
}

// saveState writes only the state (after a refresh that found no change).
func (s *store) saveState(st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := s.writeAtomic(s.statePath(st.Zone), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return fmt.Errorf("persist state of %s: %w", st.Zone, err)
	}
	return nil
}

// load reads a persisted zone. A zone without files is fs.ErrNotExist. When
// the state disagrees with the zone (a crash between the two renames), the
// zone's serial wins and the state's time is kept, which can only make the
// zone expire earlier.
func (s *store) load(name string) (*zone.Zone, state, error) {
	var st state
	data, err := os.ReadFile(s.statePath(name))
	if err != nil {
		return nil, st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, st, fmt.Errorf("state of %s: %w", name, err)
	}
	z, err := zone.Load(name, s.zonePath(name))
	if err != nil {
		return nil, st, err
	}
	st.Zone, st.Serial = z.Origin, z.Serial
	return z, st, nil
}

// states returns the state of every persisted zone.
func (s *store) states() ([]state, error) {
	files, err := filepath.Glob(filepath.Join(s.dir, "*.state"))
	if err != nil {
		return nil, err
	}
	var out []state
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var st state
		if err := json.Unmarshal(data, &st); err != nil || st.Zone == "" {
			continue // not ours, or damaged: load reports it when asked
		}
		out = append(out, st)
	}
	return out, nil
}

// remove deletes a zone's files.
func (s *store) remove(name string) error {
	var errs []error
	for _, p := range []string{s.zonePath(name), s.statePath(name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := s.sync.sync(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// writeAtomic replaces path (in s.dir) with what write produces, so that a
// reader (or a restart after a crash) sees either the old file or the new
// one.
func (s *store) writeAtomic(path string, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return s.sync.sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}
