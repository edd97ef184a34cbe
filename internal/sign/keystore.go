package sign

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Errors of the key stores, checked with errors.Is.
var (
	// ErrWrongKeyFile: the data was sealed with another key file.
	ErrWrongKeyFile = errors.New("sealed with another key file")
	// ErrNoKey: the store has no such key.
	ErrNoKey = errors.New("no such key")
)

// KeyStore keeps the keys of zones. Implementations are safe for
// concurrent use.
type KeyStore interface {
	// Keys returns the keys of a zone, oldest first.
	Keys(ctx context.Context, zone string) ([]*Key, error)
	// Put adds a key or replaces the one of the same ID (its timing).
	Put(ctx context.Context, k *Key) error
	// Delete removes a key; ErrNoKey when there is none.
	Delete(ctx context.Context, zone, id string) error
	// Zones returns the zones that have keys, sorted.
	Zones(ctx context.Context) ([]string, error)
}

// canonicalZone is a zone name in lower case, fully qualified.
func canonicalZone(name string) (string, error) {
	n := strings.ToLower(dns.Fqdn(name))
	if _, ok := dns.IsDomainName(n); !ok || name == "" {
		return "", fmt.Errorf("zone name %q is not a domain name", name)
	}
	return n, nil
}

// MemStore is a KeyStore in memory, for tests and for keys that are
// generated for one run.
type MemStore struct {
	mu   sync.Mutex
	keys map[string][]*Key
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{keys: map[string][]*Key{}} }

// Keys implements KeyStore.
func (m *MemStore) Keys(_ context.Context, zoneName string) ([]*Key, error) {
	z, err := canonicalZone(zoneName)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Key, 0, len(m.keys[z]))
	for _, k := range m.keys[z] {
		c := *k
		out = append(out, &c)
	}
	return out, nil
}

// Put implements KeyStore.
func (m *MemStore) Put(_ context.Context, k *Key) error {
	if err := checkKey(k); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *k
	ks := m.keys[k.Zone]
	if i := slices.IndexFunc(ks, func(x *Key) bool { return x.ID == k.ID }); i >= 0 {
		ks[i] = &c
		return nil
	}
	m.keys[k.Zone] = append(ks, &c)
	return nil
}

// Delete implements KeyStore.
func (m *MemStore) Delete(_ context.Context, zoneName, id string) error {
	z, err := canonicalZone(zoneName)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ks := m.keys[z]
	i := slices.IndexFunc(ks, func(x *Key) bool { return x.ID == id })
	if i < 0 {
		return fmt.Errorf("delete key %s of %s: %w", id, z, ErrNoKey)
	}
	m.keys[z] = slices.Delete(ks, i, i+1)
	if len(m.keys[z]) == 0 {
		delete(m.keys, z)
	}
	return nil
}

// Zones implements KeyStore.
func (m *MemStore) Zones(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.keys))
	for z := range m.keys {
		out = append(out, z)
	}
	slices.Sort(out)
	return out, nil
}

func checkKey(k *Key) error {
	if k == nil || k.Private == nil || k.ID == "" {
		return errors.New("store key: incomplete key (made by GenerateKey or NewKey?)")
	}
	if _, err := canonicalZone(k.Zone); err != nil {
		return fmt.Errorf("store key %s: %w", k.ID, err)
	}
	return nil
}

// Sealer encrypts data at rest with AES-256-GCM under the key of a key file
// that the operator provides.
type Sealer struct {
	aead        cipher.AEAD
	fingerprint string
	file        string
}

// GenerateKeyFile returns the contents of a new key file: 32 random bytes
// in base64 and a newline.
func GenerateKeyFile() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24)
	return []byte(base64.StdEncoding.EncodeToString(k) + "\n")
}

// LoadSealer reads a key file: 32 bytes in base64 or hex (one line), or
// the 32 bytes themselves. The file must not be readable by others.
func LoadSealer(path string) (*Sealer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s: mode %v lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	s, err := NewSealer(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	s.file = path
	return s, nil
}

// NewSealer makes a Sealer of key file contents (see LoadSealer).
func NewSealer(contents []byte) (*Sealer, error) {
	var key []byte
	text := strings.TrimSpace(string(contents))
	if b, err := base64.StdEncoding.DecodeString(text); err == nil && len(b) == 32 {
		key = b
	} else if b, err := hex.DecodeString(text); err == nil && len(b) == 32 {
		key = b
	} else if len(contents) == 32 {
		key = contents
	} else {
		return nil, errors.New("not a key: want 32 bytes, in base64 or hex on one line, or raw")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("anycastdns key file fingerprint"))
	return &Sealer{aead: aead, fingerprint: hex.EncodeToString(mac.Sum(nil)[:8]), file: "the key file"}, nil
}

// Fingerprint identifies the key file without revealing it.
func (s *Sealer) Fingerprint() string { return s.fingerprint }

// sealed is the form of sealed data.
type sealed struct {
	Format      string `json:"format"`
	Fingerprint string `json:"key_file_fingerprint"`
	Nonce       []byte `json:"nonce"`
	Data        []byte `json:"data"`
}

const sealFormat = "anycastdns-sealed-v1"

// Seal encrypts plain, bound to context (which Open must be given too).
func (s *Sealer) Seal(plain []byte, context string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return json.Marshal(sealed{Format: sealFormat, Fingerprint: s.fingerprint, Nonce: nonce,
		Data: s.aead.Seal(nil, nonce, plain, []byte(context))})
}

// Open decrypts what Seal sealed with the same key file and context.
func (s *Sealer) Open(data []byte, context string) ([]byte, error) {
	var v sealed
	if err := json.Unmarshal(data, &v); err != nil || v.Format != sealFormat {
		return nil, errors.New("not sealed data of anycastdns")
	}
	if v.Fingerprint != s.fingerprint {
		return nil, fmt.Errorf("%w: it needs the key file of fingerprint %s, %s has %s", ErrWrongKeyFile, v.Fingerprint, s.file, s.fingerprint)
	}
	if len(v.Nonce) != s.aead.NonceSize() {
		return nil, errors.New("damaged: bad nonce")
	}
	plain, err := s.aead.Open(nil, v.Nonce, v.Data, []byte(context))
	if err != nil {
		return nil, errors.New("damaged or moved: authentication failed")
	}
	return plain, nil
}

// keyJSON is a key in sealed files and exports.
type keyJSON struct {
	ID        string    `json:"id"`
	Zone      string    `json:"zone"`
	Role      Role      `json:"role"`
	Algorithm Algorithm `json:"algorithm"`
	Created   time.Time `json:"created"`
	Publish   time.Time `json:"publish,omitzero"`
	Activate  time.Time `json:"activate,omitzero"`
	Retire    time.Time `json:"retire,omitzero"`
	Remove    time.Time `json:"remove,omitzero"`
	WaitDS    bool      `json:"wait_ds,omitempty"`
	DSSeen    time.Time `json:"ds_seen,omitzero"`
	Submit    time.Time `json:"submit,omitzero"`
	Withdraw  time.Time `json:"withdraw,omitzero"`
	Private   []byte    `json:"private_pkcs8"`
}

func toJSON(k *Key) (keyJSON, error) {
	der, err := k.marshalPrivate()
	if err != nil {
		return keyJSON{}, fmt.Errorf("key %s of %s: %w", k.ID, k.Zone, err)
	}
	return keyJSON{ID: k.ID, Zone: k.Zone, Role: k.Role, Algorithm: k.Algorithm, Created: k.Created,
		Publish: k.Publish, Activate: k.Activate, Retire: k.Retire, Remove: k.Remove, WaitDS: k.WaitDS, DSSeen: k.DSSeen,
		Submit: k.Submit, Withdraw: k.Withdraw, Private: der}, nil
}

func fromJSON(j keyJSON) (*Key, error) {
	priv, err := parsePrivate(j.Private)
	if err != nil {
		return nil, fmt.Errorf("key %s of %s: private key: %w", j.ID, j.Zone, err)
	}
	k, err := NewKey(j.Zone, j.Role, j.Algorithm, priv, j.Created)
	if err != nil {
		return nil, err
	}
	if j.ID != k.ID {
		return nil, fmt.Errorf("key %s of %s: the private key is that of key %s", j.ID, j.Zone, k.ID)
	}
	k.Created, k.Publish, k.Activate, k.Retire, k.Remove = j.Created, j.Publish, j.Activate, j.Retire, j.Remove
	k.WaitDS, k.DSSeen = j.WaitDS, j.DSSeen
	k.Submit, k.Withdraw = j.Submit, j.Withdraw
	return k, nil
}

// FileStore is a KeyStore in a directory: one file per key,
// DIR/ZONE/ID.key, each sealed with the key file (AES-256-GCM), so that a
// copy of the directory without the key file reveals no key.
type FileStore struct {
	dir    string
	sealer *Sealer
	mu     sync.Mutex
}

// OpenFileStore opens (creating it if needed) a key directory sealed with
// sealer. A directory that holds keys sealed with another key file is
// refused with ErrWrongKeyFile.
func OpenFileStore(ctx context.Context, dir string, sealer *Sealer) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("key store %s: %w", dir, err)
	}
	f := &FileStore{dir: dir, sealer: sealer}
	// Check the key file against the keys of one zone at once.
	zones, err := f.Zones(ctx)
	if err != nil {
		return nil, err
	}
	if len(zones) > 0 {
		if _, err := f.Keys(ctx, zones[0]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (f *FileStore) zoneDir(z string) string {
	name := strings.TrimSuffix(z, ".")
	if name == "" {
		name = "@root"
	}
	return filepath.Join(f.dir, url.PathEscape(name))
}

// Keys implements KeyStore.
func (f *FileStore) Keys(_ context.Context, zoneName string) ([]*Key, error) {
	z, err := canonicalZone(zoneName)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.zoneDir(z)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys of %s: %w", z, err)
	}
	var out []*Key
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".key") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		k, err := f.read(path, z, strings.TrimSuffix(e.Name(), ".key"))
		if err != nil {
			return nil, fmt.Errorf("key store %s: %w", path, err)
		}
		out = append(out, k)
	}
	slices.SortStableFunc(out, func(a, b *Key) int { return a.Created.Compare(b.Created) })
	return out, nil
}

func (f *FileStore) read(path, z, id string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	plain, err := f.sealer.Open(b, z+" "+id)
	if err != nil {
		return nil, err
	}
	var j keyJSON
	if err := json.Unmarshal(plain, &j); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if j.Zone != z || j.ID != id {
		return nil, fmt.Errorf("holds key %s of %s", j.ID, j.Zone)
	}
	return fromJSON(j)
}

// Put implements KeyStore: written to a temporary file, synced and
// renamed, so that a crash leaves the old key or the new one.
func (f *FileStore) Put(_ context.Context, k *Key) error {
	if err := checkKey(k); err != nil {
		return err
	}
	j, err := toJSON(k)
	if err != nil {
		return err
	}
	plain, err := json.Marshal(j)
	if err != nil {
		return err
	}
	data, err := f.sealer.Seal(plain, k.Zone+" "+k.ID)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.zoneDir(k.Zone)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store key %s of %s: %w", k.ID, k.Zone, err)
	}
	if err := writeFileSync(filepath.Join(dir, k.ID+".key"), data); err != nil {
		return fmt.Errorf("store key %s of %s: %w", k.ID, k.Zone, err)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close() //nolint:errcheck // read-only
	return d.Sync()
}

// Delete implements KeyStore.
func (f *FileStore) Delete(_ context.Context, zoneName, id string) error {
	z, err := canonicalZone(zoneName)
	if err != nil {
		return err
	}
	if strings.ContainsAny(id, `/\.`) || id == "" {
		return fmt.Errorf("delete key %q of %s: %w", id, z, ErrNoKey)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err = os.Remove(filepath.Join(f.zoneDir(z), id+".key"))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete key %s of %s: %w", id, z, ErrNoKey)
	}
	if err != nil {
		return fmt.Errorf("delete key %s of %s: %w", id, z, err)
	}
	_ = os.Remove(f.zoneDir(z)) // only when empty
	return nil
}

// Zones implements KeyStore.
func (f *FileStore) Zones(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, fmt.Errorf("key store %s: %w", f.dir, err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name, err := url.PathUnescape(e.Name())
		if err != nil {
			continue
		}
		if name == "@root" {
			name = ""
		}
		out = append(out, name+".")
	}
	slices.Sort(out)
	return out, nil
}

// exportJSON is the plain form of a backup.
type exportJSON struct {
	Format string    `json:"format"`
	Keys   []keyJSON `json:"keys"`
}

const exportFormat = "anycastdns-keys-v1"

// Export returns a backup of the keys of the zones (every zone when none
// is named), sealed with sealer: restore it with Import and the same key
// file.
func Export(ctx context.Context, ks KeyStore, sealer *Sealer, zones ...string) ([]byte, error) {
	if len(zones) == 0 {
		var err error
		if zones, err = ks.Zones(ctx); err != nil {
			return nil, fmt.Errorf("export keys: %w", err)
		}
	}
	out := exportJSON{Format: exportFormat, Keys: []keyJSON{}}
	for _, z := range zones {
		keys, err := ks.Keys(ctx, z)
		if err != nil {
			return nil, fmt.Errorf("export keys: %w", err)
		}
		for _, k := range keys {
			j, err := toJSON(k)
			if err != nil {
				return nil, fmt.Errorf("export keys: %w", err)
			}
			out.Keys = append(out.Keys, j)
		}
	}
	plain, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return sealer.Seal(plain, exportFormat)
}

// Import puts the keys of a backup made by Export into ks and returns how
// many it put.
func Import(ctx context.Context, ks KeyStore, sealer *Sealer, backup []byte) (int, error) {
	plain, err := sealer.Open(backup, exportFormat)
	if err != nil {
		return 0, fmt.Errorf("import keys: %w", err)
	}
	var in exportJSON
	if err := json.Unmarshal(plain, &in); err != nil || in.Format != exportFormat {
		return 0, errors.New("import keys: not a key backup of anycastdns")
	}
	keys := make([]*Key, 0, len(in.Keys))
	for i, j := range in.Keys {
		k, err := fromJSON(j)
		if err != nil {
			return 0, fmt.Errorf("import keys: keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	for i, k := range keys {
		if err := ks.Put(ctx, k); err != nil {
			return i, fmt.Errorf("import keys: %w", err)
		}
	}
	return len(keys), nil
}

// SealKey returns a key sealed with the sealer, bound to its zone and ID:
// the form a database keeps it in. OpenKey reverses it.
func (s *Sealer) SealKey(k *Key) ([]byte, error) {
	if err := checkKey(k); err != nil {
		return nil, err
	}
	j, err := toJSON(k)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("key %s of %s: %w", k.ID, k.Zone, err)
	}
	return s.Seal(plain, k.Zone+" "+k.ID)
}

// OpenKey returns the key of zone with ID id that SealKey sealed.
func (s *Sealer) OpenKey(data []byte, zoneName, id string) (*Key, error) {
	z, err := canonicalZone(zoneName)
	if err != nil {
		return nil, err
	}
	plain, err := s.Open(data, z+" "+id)
	if err != nil {
		return nil, fmt.Errorf("key %s of %s: %w", id, z, err)
	}
	var j keyJSON
	if err := json.Unmarshal(plain, &j); err != nil {
		return nil, fmt.Errorf("key %s of %s: decode: %w", id, z, err)
	}
	if j.Zone != z || j.ID != id {
		return nil, fmt.Errorf("key %s of %s: holds key %s of %s", id, z, j.ID, j.Zone)
	}
	return fromJSON(j)
}
