package zonesync

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// store keeps transferred zones below dir, in 256 subdirectories chosen by
// a hash of the file name: NAME.zone (master file) and NAME.state (JSON),
// each replaced atomically (temporary file, fsync, rename, fsync of the
// directory). With one flat directory, creating files among 20,000 others
// cost a new node loading 10,000 zones a sixth of its CPU. Files of the
// earlier flat layout are still read, and removed once the zone is saved
// again.
//
// The directory fsyncs of concurrent writes are shared (group commit): a
// write waits for one that started after its rename, and one fsync covers
// every rename before it.
type store struct {
	dir string
	// journalMin is the size from which a zone file is continued by a
	// journal rather than rewritten (journalMinZone; tests lower it).
	journalMin int64

	mu    sync.Mutex
	syncs map[string]*groupSync // by directory
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

func newGroupSync(dir string) *groupSync {
	g := &groupSync{dir: dir}
	g.cond = sync.NewCond(&g.mu)
	return g
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

// syncDirOf fsyncs dir, sharing the fsync with concurrent callers.
func (s *store) syncDirOf(dir string) error {
	s.mu.Lock()
	g := s.syncs[dir]
	if g == nil {
		g = newGroupSync(dir)
		s.syncs[dir] = g
	}
	s.mu.Unlock()
	return g.sync()
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
	// SHA256 is the hex SHA-256 of the zone file's bytes and Records the
	// number of records it holds, checked when the zone is loaded. A state
	// written before they existed has neither: its zone is unverified.
	SHA256  string `json:"sha256,omitempty"`
	Records int    `json:"records,omitempty"`
	// FileBytes and JournalBytes are the sizes of the zone file and of its
	// journal, known once they are written or read (not stored).
	FileBytes    int64 `json:"-"`
	JournalBytes int64 `json:"-"`
}

// errCorrupt: a persisted zone file does not match its state's checksum or
// record count (cut short, altered, or from another version of the zone).
var errCorrupt = errors.New("persisted zone fails verification")

func newStore(dataDir string) (*store, error) {
	dir := filepath.Join(dataDir, "zones")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return &store{dir: dir, journalMin: journalMinZone, syncs: map[string]*groupSync{}}, nil
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

// shard is the subdirectory of a file name: two hex digits of its FNV-1a
// hash.
func shard(file string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(file))
	return fmt.Sprintf("%02x", h.Sum32()&0xff)
}

func (s *store) path(name, ext string) string {
	f := fileName(name)
	return filepath.Join(s.dir, shard(f), f+ext)
}

func (s *store) zonePath(name string) string  { return s.path(name, ".zone") }
func (s *store) statePath(name string) string { return s.path(name, ".state") }

// ZoneFile returns where a Manager with data directory dataDir keeps the
// master file of a secondary zone: DATA_DIR/zones/XX/NAME.zone, XX two hex
// digits of a hash of NAME.
func ZoneFile(dataDir, zone string) string {
	s := store{dir: filepath.Join(dataDir, "zones")}
	return s.zonePath(zone)
}

// legacyPaths are the zone and state files of the earlier flat layout.
func (s *store) legacyPaths(name string) []string {
	f := filepath.Join(s.dir, fileName(name))
	return []string{f + ".zone", f + ".state"}
}

// save writes the zone, then its state with the zone file's checksum and
// record count, and returns that state. A crash between the two renames
// leaves a state whose checksum does not match the file: load discards the
// zone, which is transferred again.
//
// The zone's journal, which continued the zone file before it, is removed
// after the state (a crash before that leaves a journal that load ignores:
// it names the old file's checksum).
func (s *store) save(z *zone.Zone, st state) (state, error) {
	h := sha256.New()
	var n int64
	if err := s.writeAtomic(s.zonePath(z.Origin), func(w io.Writer) error {
		var err error
		n, err = z.WriteTo(io.MultiWriter(w, h))
		return err
	}); err != nil {
		return st, fmt.Errorf("persist %s: %w", z.Origin, err)
	}
	st.SHA256, st.Records, st.FileBytes, st.JournalBytes = hex.EncodeToString(h.Sum(nil)), z.Records, n, 0
	if err := s.saveState(st); err != nil {
		return st, err
	}
	if err := s.removeJournal(z.Origin); err != nil {
		return st, err
	}
	return st, s.removeLegacy(z.Origin)
}

// removeLegacy deletes a zone's files of the flat layout, once the zone is
// saved in the current one.
func (s *store) removeLegacy(name string) error {
	removed := false
	for _, p := range s.legacyPaths(name) {
		err := os.Remove(p)
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("remove old file of %s: %w", name, err)
		}
	}
	if removed {
		return s.syncDirOf(s.dir)
	}
	return nil
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

// load reads a persisted zone. A zone without files is fs.ErrNotExist. The
// zone file must have the checksum and record count its state records
// (errCorrupt otherwise, naming the file); a state without a checksum
// (written by an earlier version) loads the zone unverified: st.SHA256 is
// "". The zone's serial wins over the state's. The zone's journal is
// applied to the zone file's version (replayJournal).
func (s *store) load(name string) (*zone.Zone, state, error) {
	var st state
	zonePath, statePath := s.zonePath(name), s.statePath(name)
	data, err := os.ReadFile(statePath)
	if errors.Is(err, fs.ErrNotExist) {
		legacy := s.legacyPaths(name)
		zonePath, statePath = legacy[0], legacy[1]
		data, err = os.ReadFile(statePath)
	}
	if err != nil {
		return nil, st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, st, fmt.Errorf("state of %s (%s): %w", name, statePath, err)
	}
	if st.SHA256 != "" {
		sum, err := fileSHA256(zonePath)
		if err != nil {
			return nil, st, err
		}
		if sum != st.SHA256 {
			return nil, st, fmt.Errorf("%w: %s has SHA-256 %s, its state %s says %s", errCorrupt, zonePath, sum, statePath, st.SHA256)
		}
	}
	z, err := zone.Load(name, zonePath)
	if err != nil {
		return nil, st, err
	}
	if st.SHA256 != "" && z.Records != st.Records {
		return nil, st, fmt.Errorf("%w: %s holds %d records, its state %s says %d", errCorrupt, zonePath, z.Records, statePath, st.Records)
	}
	if fi, err := os.Stat(zonePath); err == nil {
		st.FileBytes = fi.Size()
	}
	if z, st.JournalBytes, err = s.replayJournal(name, st.SHA256, z); err != nil {
		return nil, st, err
	}
	st.Zone, st.Serial = z.Origin, z.Serial
	return z, st, nil
}

// fileSHA256 returns the hex SHA-256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// states returns the state of every persisted zone.
func (s *store) states() ([]state, error) {
	files, err := filepath.Glob(filepath.Join(s.dir, "*", "*.state"))
	if err != nil {
		return nil, err
	}
	legacy, err := filepath.Glob(filepath.Join(s.dir, "*.state"))
	if err != nil {
		return nil, err
	}
	files = append(files, legacy...)
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
	for _, p := range []string{s.zonePath(name), s.statePath(name), s.journalPath(name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := s.syncDirOf(filepath.Dir(s.zonePath(name))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := s.removeLegacy(name); err != nil {
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
	if errors.Is(err, fs.ErrNotExist) {
		// The first file of its shard.
		if err = os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err = s.syncDirOf(s.dir); err != nil {
			return err
		}
		f, err = os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	}
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
	return s.syncDirOf(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}
