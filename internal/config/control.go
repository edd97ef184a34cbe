package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// Control is the configuration of the "anycastd control" role: the zone
// store, its REST API and (through package xfrout) zone transfers to the
// nodes.
//
// The zero Control is not valid; LoadControl and ParseControl return one with
// defaults applied and validated. One built in code can be checked with
// Validate. Compare Controls with cmpopts.IgnoreUnexported(config.Control{}).
type Control struct {
	// DataDir holds the zone database; required, created if missing.
	// Relative to the configuration file's directory when loaded.
	DataDir string
	API     ControlAPI
	Xfr     Xfr
	// SerialPolicy is how zones created without one number their
	// versions: "increment" (default) or "date" (YYYYMMDDnn).
	SerialPolicy string
	// JournalLimit is how many changes are kept per zone for IXFR,
	// 1..1000000 (default 1000).
	JournalLimit int
	Log          Log
	// Metrics is the Prometheus endpoint (/metrics, with /healthz and
	// /readyz); unset = none.
	Metrics Metrics
	// Stream is the listener of the nodes' streams (stream.go).
	Stream Stream
	// Levels, when set, makes the control plane decide each PoP's level
	// from the monitors' reports and send it to the nodes (levels.go);
	// nil = no decisions are sent (reports are still kept and shown).
	Levels *Levels
	// Signing is DNSSEC signing on the control plane (signing.go).
	Signing Signing
	// Store chooses the zone database (store.go); default the SQLite
	// file in DataDir.
	Store Store

	src        *source // where the fields came from; nil for a Control built in code
	tokenLines []int   // line of each token in API.TokenFile
}

// ControlAPI configures the REST API.
type ControlAPI struct {
	// Listen is the HTTP address (default 127.0.0.1:8080, as in anycastd
	// standalone and the default of anycastctl -api). The API speaks
	// plain HTTP: outside loopback, put it behind a TLS proxy.
	Listen netip.AddrPort
	// Tokens are the bearer tokens that may use the API, at least one:
	// from the "tokens" list, or read from TokenFile (one per line; blank
	// lines and lines starting with # are ignored). 16 to 512 characters
	// of A-Z a-z 0-9 - . _ ~ + / =, no duplicates.
	Tokens    []string
	TokenFile string // where Tokens were read from; "" when listed inline
	// MaxBody is the largest request body in bytes, 1 KiB..1 GiB
	// (default 32 MiB); a larger one is refused with 413.
	MaxBody int64
}

// Xfr configures zone transfers to the nodes (AXFR/IXFR out, NOTIFY, the
// catalog zone); package xfrout consumes it.
type Xfr struct {
	// Listen holds the addresses of the transfer server, UDP and TCP on
	// each; empty = no transfer server (then the rest must be empty too).
	Listen   []netip.AddrPort
	TSIGKeys []tsig.Key
	// AllowTransfer lists who may transfer zones; at least one entry when
	// Listen is set.
	AllowTransfer []XfrACL
	// Notify lists the secondaries sent NOTIFY when a zone changes.
	Notify []XfrNotify
	// Catalog, when set, serves a catalog zone (RFC 9432) listing every
	// zone, so that nodes pick up new zones by themselves.
	Catalog *XfrCatalog
	// Update, when set, accepts DNS UPDATE (RFC 2136) on the transfer
	// listener (update.go); nil: UPDATE is answered NOTIMP.
	Update *XfrUpdate
	// TLS, when set, serves transfers over TLS too (XoT, RFC 9103), with
	// the same ACL and keys.
	TLS *XfrTLS
}

// XfrTLS is the transfer server over TLS.
type XfrTLS struct {
	// Listen holds its addresses (TCP; 853 by convention); at least one.
	Listen []netip.AddrPort
	// Cert and Key are the PEM certificate (chain) and key, re-read on
	// SIGHUP; both required.
	Cert, Key string
}

// XfrACL allows AXFR/IXFR from a prefix, signed with Key unless Key is
// empty.
type XfrACL struct {
	Prefix netip.Prefix
	Key    string // the Name of a key of TSIGKeys, or ""
	// TLS allows transfers over TLS only (xfr.tls), refused in clear.
	TLS bool
}

// XfrNotify is a secondary that is sent NOTIFY, signed with Key unless Key
// is empty.
type XfrNotify struct {
	Addr netip.AddrPort
	Key  string // the Name of a key of TSIGKeys, or ""
}

// XfrCatalog names the catalog zone.
type XfrCatalog struct {
	Zone string // lower-case FQDN with the trailing dot
}

// Defaults and bounds of the control role.
const (
	defaultJournalLimit = 1000
	maxJournalLimit     = 1_000_000
	defaultMaxBody      = 32 << 20
	minMaxBody          = 1 << 10
	maxMaxBody          = 1 << 30
	minTokenLen         = 16
	maxTokenLen         = 512
	// minXfrSecret is the shortest secret of a transfer key, in bytes
	// once decoded.
	minXfrSecret = 16
)

// DefaultAPIListen is where the API listens unless configured otherwise.
var DefaultAPIListen = netip.MustParseAddrPort("127.0.0.1:8080")

// LoadControl reads the control configuration at path, decodes it, reads
// the API token file if there is one, applies defaults and validates it.
// Problems are reported as "path:line:column: field: message", all at once;
// relative paths are resolved against the directory of path.
func LoadControl(path string) (*Control, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read control config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("read control config: resolve directory of %s: %w", path, err)
	}
	return parseControl(data, path, dir)
}

// ParseControl is LoadControl on data that was read from filename. filename
// names the document in messages and its directory resolves relative paths;
// a token file is read from the file system.
func ParseControl(data []byte, filename string) (*Control, error) {
	return parseControl(data, filename, filepath.Dir(filename))
}

func parseControl(data []byte, file, baseDir string) (*Control, error) {
	d := newDecoder(file, baseDir, len(data))
	c := d.decodeControl(data)
	if c == nil || d.stopped {
		return nil, joinErrors(file, d.errs)
	}
	v := &validator{src: d.src}
	c.validate(v)
	if err := joinErrors(file, append(d.errs, v.errs...)); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeControl decodes data, reads the token file and applies defaults. It
// returns nil if data is not a YAML document at all.
func (d *decoder) decodeControl(data []byte) *Control {
	top, fe := parseDocument(data, d.src.file)
	if fe != nil {
		d.errs = append(d.errs, fe)
		return nil
	}
	c := &Control{
		API:          ControlAPI{Listen: DefaultAPIListen, MaxBody: defaultMaxBody},
		SerialPolicy: "increment",
		JournalLimit: defaultJournalLimit,
		Stream:       Stream{Heartbeat: defaultStreamHeartbeat},
		Log:          defaultLog(),
		src:          d.src,
	}
	d.src.pos[""] = position{1, 1}
	if top != nil {
		d.control(top, c)
	}
	if d.present["api.tokens"] && d.present["api.token_file"] {
		p := d.src.lookup("api.token_file")
		d.errs = append(d.errs, &FieldError{File: d.src.file, Line: p.line, Column: p.col, Path: "api.token_file",
			Msg: "use either api.tokens or api.token_file, not both"})
		d.src.markBad("api.token_file")
		d.src.markBad("api.tokens")
	} else if c.API.TokenFile != "" && !d.src.suppressed("api.token_file") {
		tokens, lines, err := readAPITokenFile(c.API.TokenFile)
		if err != nil {
			p := d.src.lookup("api.token_file")
			d.errs = append(d.errs, &FieldError{File: d.src.file, Line: p.line, Column: p.col, Path: "api.token_file", Msg: err.Error()})
			d.src.markBad("api.token_file")
		}
		c.API.Tokens, c.tokenLines = tokens, lines
	}
	return c
}

func (d *decoder) control(top *yaml.Node, c *Control) {
	d.mapping(top, "", []field{
		{"data_dir", func(n *yaml.Node, p string) { d.file(n, p, &c.DataDir) }},
		{"api", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"listen", func(n *yaml.Node, p string) { c.API.Listen, _ = parseScalar(d, n, p, parseAddrPort) }},
				{"tokens", func(n *yaml.Node, p string) {
					items := d.sequence(n, p)
					c.API.Tokens = make([]string, len(items))
					for i, item := range items {
						d.str(item, indexPath(p, i), &c.API.Tokens[i])
					}
				}},
				{"token_file", func(n *yaml.Node, p string) { d.file(n, p, &c.API.TokenFile) }},
				{"max_body", func(n *yaml.Node, p string) {
					if v, ok := d.bounded(n, p, minMaxBody, maxMaxBody); ok {
						c.API.MaxBody = v
					}
				}},
			})
		}},
		{"xfr", func(n *yaml.Node, p string) { d.xfr(n, p, &c.Xfr) }},
		{"serial_policy", func(n *yaml.Node, p string) {
			if v, ok := parseScalar(d, n, p, parseControlSerialPolicy); ok {
				c.SerialPolicy = v
			}
		}},
		{"journal_limit", func(n *yaml.Node, p string) {
			if v, ok := d.bounded(n, p, 1, maxJournalLimit); ok {
				c.JournalLimit = int(v)
			}
		}},
		{"log", func(n *yaml.Node, p string) { d.log(n, p, &c.Log) }},
		{"metrics", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"listen", func(n *yaml.Node, p string) { c.Metrics.Listen, _ = parseScalar(d, n, p, parseOptionalAddrPort) }},
			})
		}},
		d.streamField(c),
		d.levelsField(c),
		d.signingField(c),
		d.storeField(c),
	})
}

func (d *decoder) xfr(n *yaml.Node, path string, x *Xfr) {
	d.mapping(n, path, []field{
		{"listen", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			x.Listen = make([]netip.AddrPort, len(items))
			for i, item := range items {
				x.Listen[i], _ = parseScalar(d, item, indexPath(p, i), parseAddrPort)
			}
		}},
		{"tsig_keys", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			x.TSIGKeys = make([]tsig.Key, len(items))
			for i, item := range items {
				d.xfrKey(item, indexPath(p, i), &x.TSIGKeys[i])
			}
		}},
		{"allow_transfer", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			x.AllowTransfer = make([]XfrACL, len(items))
			for i, item := range items {
				a := &x.AllowTransfer[i]
				d.mapping(item, indexPath(p, i), []field{
					{"prefix", func(n *yaml.Node, p string) { a.Prefix, _ = parseScalar(d, n, p, parsePrefix) }},
					{"key", func(n *yaml.Node, p string) { a.Key, _ = parseScalar(d, n, p, parseXfrKeyName) }},
					{"tls", func(n *yaml.Node, p string) { d.boolean(n, p, &a.TLS) }},
				})
			}
		}},
		{"notify", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			x.Notify = make([]XfrNotify, len(items))
			for i, item := range items {
				t := &x.Notify[i]
				d.mapping(item, indexPath(p, i), []field{
					{"addr", func(n *yaml.Node, p string) { t.Addr, _ = parseScalar(d, n, p, parseAddrPort) }},
					{"key", func(n *yaml.Node, p string) { t.Key, _ = parseScalar(d, n, p, parseXfrKeyName) }},
				})
			}
		}},
		{"update", func(n *yaml.Node, p string) { d.xfrUpdate(n, p, x) }},
		{"tls", func(n *yaml.Node, p string) {
			if isNull(n) {
				return
			}
			t := &XfrTLS{}
			x.TLS = t
			d.mapping(n, p, []field{
				{"listen", func(n *yaml.Node, p string) {
					items := d.sequence(n, p)
					t.Listen = make([]netip.AddrPort, len(items))
					for i, item := range items {
						t.Listen[i], _ = parseScalar(d, item, indexPath(p, i), parseAddrPort)
					}
				}},
				{"cert", func(n *yaml.Node, p string) { d.file(n, p, &t.Cert) }},
				{"key", func(n *yaml.Node, p string) { d.file(n, p, &t.Key) }},
			})
		}},
		{"catalog", func(n *yaml.Node, p string) {
			if isNull(n) {
				return
			}
			x.Catalog = &XfrCatalog{}
			d.mapping(n, p, []field{
				{"zone", func(n *yaml.Node, p string) {
					x.Catalog.Zone, _ = parseScalar(d, n, p, func(s string) (string, error) {
						if s == "" {
							return "", nil
						}
						return canonicalZoneName(s)
					})
				}},
			})
		}},
	})
}

func (d *decoder) xfrKey(n *yaml.Node, path string, k *tsig.Key) {
	k.Algorithm = tsig.DefaultAlgorithm
	d.mapping(n, path, []field{
		{"name", func(n *yaml.Node, p string) { k.Name, _ = parseScalar(d, n, p, parseXfrKeyName) }},
		{"algorithm", func(n *yaml.Node, p string) { d.str(n, p, &k.Algorithm) }},
		// The secret is checked in validate and never repeated in messages.
		{"secret", func(n *yaml.Node, p string) { d.str(n, p, &k.Secret) }},
	})
}

func parseControlSerialPolicy(s string) (string, error) {
	switch s {
	case "increment", "date":
		return s, nil
	}
	return "", fmt.Errorf("invalid serial policy %q (want increment or date)", s)
}

// parseXfrKeyName canonicalizes a TSIG key name: a domain name, lower case,
// fully qualified. "" stays "" (no key).
func parseXfrKeyName(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if s == "." {
		return "", fmt.Errorf("invalid key name %q", s)
	}
	n, err := canonicalZoneName(s)
	if err != nil {
		return "", fmt.Errorf("invalid key name: %s", strings.TrimPrefix(err.Error(), "zone name "))
	}
	return n, nil
}

// readAPITokenFile reads bearer tokens, one per line, skipping blank lines and
// # comments, and returns them with their line numbers. The file must not be
// readable by other users.
func readAPITokenFile(path string) (tokens []string, lines []int, err error) {
	// Messages leave the path out: the field names it already.
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the token file: %w", pathErr(err))
	}
	if st.Mode().Perm()&0o007 != 0 {
		return nil, nil, fmt.Errorf("the token file is accessible to other users (mode %04o); chmod o-rwx it", st.Mode().Perm())
	}
	data, err := readFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the token file: %w", pathErr(err))
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxFileSize)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, line)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("cannot read the token file: %w", err)
	}
	if len(tokens) == 0 {
		return nil, nil, errors.New("the token file holds no token")
	}
	return tokens, lines, nil
}

// pathErr drops the path from an *fs.PathError.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Validate reports every problem in c, joined with errors.Join; nil if there
// is none. For a Control that was loaded, each problem names the file, line
// and column; for one built in code, only the field path.
func (c *Control) Validate() error {
	v := &validator{src: c.src}
	c.validate(v)
	file := ""
	if c.src != nil {
		file = c.src.file
	}
	return joinErrors(file, v.errs)
}

func (c *Control) validate(v *validator) {
	if c.DataDir == "" {
		v.add("data_dir", "required")
	}
	v.store(&c.Store)
	tcp := map[netip.AddrPort]string{}
	if !c.API.Listen.IsValid() {
		v.add("api.listen", "required")
	} else {
		v.httpListen("api.listen", c.API.Listen, tcp)
	}
	c.validateTokens(v)
	if c.API.MaxBody < minMaxBody || c.API.MaxBody > maxMaxBody {
		v.add("api.max_body", "%s", rangeMsg(c.API.MaxBody, minMaxBody, maxMaxBody))
	}
	if _, err := parseControlSerialPolicy(c.SerialPolicy); err != nil {
		v.add("serial_policy", "%v", err)
	}
	if c.JournalLimit < 1 || c.JournalLimit > maxJournalLimit {
		v.add("journal_limit", "%s", rangeMsg(int64(c.JournalLimit), 1, maxJournalLimit))
	}
	v.log("log", c.Log)
	v.xfr(&c.Xfr, tcp)
	v.httpListen("metrics.listen", c.Metrics.Listen, tcp)
	v.stream(c, tcp)
	v.controlLevels(c)
	v.signing(&c.Signing)
}

func (c *Control) validateTokens(v *validator) {
	path := "api.tokens"
	if c.API.TokenFile != "" {
		path = "api.token_file"
	}
	if len(c.API.Tokens) == 0 {
		v.add(path, "at least one token is required (api.tokens or api.token_file)")
		return
	}
	seen := map[string]int{}
	for i, t := range c.API.Tokens {
		// Tokens from a file are reported by number, never quoted: the
		// message may end up in a log.
		p, what := indexPath("api.tokens", i), "a token"
		if c.API.TokenFile != "" {
			p, what = "api.token_file", fmt.Sprintf("token %d", i+1)
			if i < len(c.tokenLines) {
				what += fmt.Sprintf(" (%s:%d)", c.API.TokenFile, c.tokenLines[i])
			}
		} else if v.bad(p) {
			continue
		}
		switch {
		case len(t) < minTokenLen || len(t) > maxTokenLen:
			v.add(p, "%s must be %d to %d characters long, got %d", what, minTokenLen, maxTokenLen, len(t))
		case strings.IndexFunc(t, func(r rune) bool { return !isAPITokenChar(r) }) >= 0:
			v.add(p, "%s may contain only A-Z a-z 0-9 - . _ ~ + / =", what)
		default:
			switch j, dup := seen[t]; {
			case dup && c.API.TokenFile != "":
				v.add(p, "%s is the same as token %d", what, j+1)
			case dup:
				v.add(p, "duplicate of api.tokens[%d]", j)
			default:
				seen[t] = i
			}
		}
	}
}

// isAPITokenChar reports whether r may appear in a bearer token (the b64token
// characters of RFC 6750 §2.1).
func isAPITokenChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/=", r)
}

func (v *validator) xfr(x *Xfr, tcp map[netip.AddrPort]string) {
	for i, a := range x.Listen {
		p := indexPath("xfr.listen", i)
		switch {
		case !a.IsValid():
			v.add(p, "invalid address")
		case a.Port() == 0:
			v.add(p, "port must not be 0")
		case !v.bad(p):
			v.httpListen(p, a, tcp)
		}
	}
	keys := map[string]int{}
	for i := range x.TSIGKeys {
		k := &x.TSIGKeys[i]
		p := indexPath("xfr.tsig_keys", i)
		switch {
		case k.Name == "":
			if !v.bad(p + ".name") {
				v.add(p+".name", "required")
			}
		case !v.bad(p + ".name"):
			if j, dup := keys[k.Name]; dup {
				v.add(p+".name", "duplicate key %s (also xfr.tsig_keys[%d])", k.Name, j)
			} else {
				keys[k.Name] = i
			}
		}
		if _, err := tsig.ParseAlgorithm(k.Algorithm); err != nil {
			v.add(p+".algorithm", "%v", err)
		}
		if !v.bad(p + ".secret") {
			switch b, err := tsig.DecodeSecret(k.Secret); {
			case k.Secret == "":
				v.add(p+".secret", "required (base64)")
			case err != nil:
				v.add(p+".secret", "not valid base64")
			case len(b) < minXfrSecret:
				v.add(p+".secret", "must be at least %d bytes once decoded, got %d", minXfrSecret, len(b))
			}
		}
	}
	checkKey := func(path, key string) {
		if key == "" || v.bad(path) {
			return
		}
		if _, ok := keys[key]; !ok {
			v.add(path, "no key %s in xfr.tsig_keys", key)
		}
	}
	for i, a := range x.AllowTransfer {
		p := indexPath("xfr.allow_transfer", i)
		switch {
		case !a.Prefix.IsValid():
			if !v.bad(p + ".prefix") {
				v.add(p+".prefix", "required")
			}
		case a.Prefix != a.Prefix.Masked():
			v.add(p+".prefix", "%s has host bits set (did you mean %s?)", a.Prefix, a.Prefix.Masked())
		}
		checkKey(p+".key", a.Key)
		if a.TLS && x.TLS == nil {
			v.add(p+".tls", "transfers over TLS only, but there is no xfr.tls listener")
		}
	}
	for i, t := range x.Notify {
		p := indexPath("xfr.notify", i)
		switch {
		case !t.Addr.IsValid():
			if !v.bad(p + ".addr") {
				v.add(p+".addr", "required")
			}
		case t.Addr.Port() == 0:
			v.add(p+".addr", "port must not be 0")
		case t.Addr.Addr().IsUnspecified() || t.Addr.Addr().IsMulticast():
			v.add(p+".addr", "%s is not a unicast address", t.Addr.Addr())
		}
		checkKey(p+".key", t.Key)
	}
	v.xfrUpdate(x, keys)
	if x.TLS != nil {
		v.xfrTLS(x.TLS, tcp)
	}
	if x.Catalog != nil && x.Catalog.Zone == "" && !v.bad("xfr.catalog.zone") {
		v.add("xfr.catalog.zone", "required (for example catalog.invalid.)")
	}
	if len(x.Listen) == 0 {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"allow_transfer", len(x.AllowTransfer) > 0},
			{"notify", len(x.Notify) > 0},
			{"catalog", x.Catalog != nil},
			{"update", x.Update != nil},
			{"tls", x.TLS != nil},
		} {
			if f.set {
				v.add("xfr.listen", "required when xfr.%s is set", f.name)
				break
			}
		}
	} else if len(x.AllowTransfer) == 0 {
		v.add("xfr.allow_transfer", "at least one entry is required when xfr.listen is set, or nobody can transfer")
	}
}
