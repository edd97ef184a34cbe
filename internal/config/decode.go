package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// position is a 1-based line and column in a document.
type position struct{ line, col int }

// source remembers where the fields of a decoded document came from, so that
// Validate can point at them.
type source struct {
	file string
	pos  map[string]position // field path -> position of its value (or key)
	// bad holds the field paths whose value failed to decode, and
	// badBelow every ancestor of those.
	bad, badBelow map[string]bool
}

func newSource(file string) *source {
	return &source{file: file, pos: map[string]position{}, bad: map[string]bool{}, badBelow: map[string]bool{}}
}

// lookup returns the position of path, or of its nearest ancestor that has
// one (a field that was absent from the document is reported at its parent).
func (s *source) lookup(path string) position {
	for {
		if p, ok := s.pos[path]; ok {
			return p
		}
		if path == "" {
			return position{}
		}
		path = parentPath(path)
	}
}

// markBad records that the value at path failed to decode.
func (s *source) markBad(path string) {
	s.bad[path] = true
	for p := path; p != ""; {
		p = parentPath(p)
		if s.badBelow[p] {
			break
		}
		s.badBelow[p] = true
	}
}

// suppressed reports whether a problem at path should be left out because
// decoding already reported a problem at the same path, an ancestor or a
// descendant of it: the value there is a placeholder, and a second message
// about it would only be noise.
func (s *source) suppressed(path string) bool {
	if s.badBelow[path] {
		return true
	}
	for p := path; ; p = parentPath(p) {
		if s.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// parentPath returns the path of the mapping or sequence holding path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// keyPath returns the path of key inside the mapping at path. Keys that are
// not plain words are quoted so that a path is always one line.
func keyPath(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath returns the path of item i of the sequence at path.
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// parseDocument parses data as exactly one YAML document and returns its
// top-level node, nil if the document is empty.
func parseDocument(data []byte, file string) (top *yaml.Node, fe *FieldError) {
	defer func() {
		// The YAML library must not take the process down on hostile
		// input; report a failure of it as an invalid document.
		if r := recover(); r != nil {
			top, fe = nil, &FieldError{File: file, Msg: "invalid YAML: parser failure: " + strconv.Quote(fmt.Sprint(r))}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(file, err)
	default:
		return nil, &FieldError{File: file, Line: next.Line, Column: next.Column,
			Msg: "a second YAML document; the configuration must be a single document"}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^line ([0-9]+): (.*)$`)

// syntaxError turns an error of the YAML parser ("yaml: line 3: ...") into a
// FieldError that carries the line.
func syntaxError(file string, err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "\n", " ")
	fe := &FieldError{File: file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if line, err := strconv.Atoi(m[1]); err == nil {
			fe.Line = line
			msg = m[2]
		}
	}
	fe.Msg = "invalid YAML: " + msg
	return fe
}

// decoder walks a yaml.Node tree against a schema written as code, filling Go
// values and collecting every problem it finds.
type decoder struct {
	src     *source
	baseDir string // directory that relative file paths are resolved against
	errs    []*FieldError
	present map[string]bool // field paths that had a non-null value

	nodes, budget int // nodes visited, counting alias expansions, and the limit
	stopped       bool

	// keys, when not nil, records the keys each mapping allows, by path with
	// sequence indexes left out ("bgp.peers[].bfd"); the tests use it to
	// check that the example configuration shows every key.
	keys map[string][]string
}

func newDecoder(file, baseDir string, size int) *decoder {
	return &decoder{
		src:     newSource(file),
		baseDir: baseDir,
		present: map[string]bool{},
		// A node takes at least one byte of input unless it is reached
		// through an alias; the budget stops documents that use aliases to
		// expand into far more work than their size.
		budget: 10000 + 2*size,
	}
}

// errorAt records a problem with the value n at path.
func (d *decoder) errorAt(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{
		File: d.src.file, Line: n.Line, Column: n.Column, Path: path,
		Msg: fmt.Sprintf(format, args...),
	})
	d.src.markBad(path)
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// value resolves n, counts it against the budget and records its position.
// It returns nil for a null value (an absent field) and once decoding has
// stopped.
func (d *decoder) value(n *yaml.Node, path string) *yaml.Node {
	if d.stopped {
		return nil
	}
	n = resolve(n)
	if n.Kind == yaml.AliasNode {
		d.errorAt(n, path, "alias nested too deeply")
		return nil
	}
	d.nodes++
	if d.nodes > d.budget {
		d.errorAt(n, path, "document expands to more than %d nodes (through aliases?)", d.budget)
		d.stopped = true
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	d.src.pos[path] = position{n.Line, n.Column}
	d.present[path] = true
	return n
}

// describe names the kind of a node for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.ShortTag() {
		case "!!str":
			return "string " + strconv.Quote(v)
		case "!!int":
			return "integer " + v
		case "!!float":
			return "number " + v
		case "!!bool":
			return "boolean " + v
		case "!!null":
			return "null"
		}
		return "value " + strconv.Quote(v)
	}
	return "an unexpected node"
}

// field is one key of a mapping and how to decode its value.
type field struct {
	key    string
	decode func(n *yaml.Node, path string)
}

// mapping decodes the mapping n at path: every key must be one of fields and
// appear once. A null n is an absent mapping and leaves everything unset.
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) {
	if d.keys != nil {
		schema := schemaPath(path)
		if _, ok := d.keys[schema]; !ok {
			for _, f := range fields {
				d.keys[schema] = append(d.keys[schema], f.key)
			}
		}
	}
	if n = d.value(n, path); n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorAt(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	first := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorAt(k, path, "a key must be a plain string, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errorAt(k, path, "merge keys (<<) are not supported")
			continue
		}
		kp := keyPath(path, k.Value)
		if line, dup := first[k.Value]; dup {
			d.errorAt(k, kp, "duplicate key (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		j := slices.IndexFunc(fields, func(f field) bool { return f.key == k.Value })
		if j < 0 {
			d.errorAt(k, kp, "unknown key (allowed: %s)", allowedKeys(fields))
			continue
		}
		d.src.pos[kp] = position{k.Line, k.Column}
		fields[j].decode(v, kp)
		if d.stopped {
			return
		}
	}
}

func allowedKeys(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

var indexes = regexp.MustCompile(`\[[0-9]+\]`)

// schemaPath drops sequence indexes from a path: "zones[3].name" becomes
// "zones[].name".
func schemaPath(path string) string {
	return indexes.ReplaceAllString(path, "[]")
}

// sequence returns the items of the list n at path, nil for an absent list.
// Null items are reported; their decoders then see an absent value and leave
// a zero placeholder so that later items keep their indexes.
func (d *decoder) sequence(n *yaml.Node, path string) []*yaml.Node {
	if n = d.value(n, path); n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorAt(n, path, "expected a list, got %s", describe(n))
		return nil
	}
	for i, item := range n.Content {
		if isNull(item) {
			d.errorAt(item, indexPath(path, i), "empty list item")
		}
	}
	return n.Content
}

// scalar returns the scalar n at path, nil if it is absent or not a scalar.
func (d *decoder) scalar(n *yaml.Node, path string) *yaml.Node {
	if n = d.value(n, path); n == nil {
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		d.errorAt(n, path, "expected a single value, got %s", describe(n))
		return nil
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
		return n
	}
	d.errorAt(n, path, "unsupported tag %s", strconv.Quote(n.ShortTag()))
	return nil
}

// str decodes a string. Numbers and booleans are taken as written.
func (d *decoder) str(n *yaml.Node, path string, dst *string) {
	if s := d.scalar(n, path); s != nil {
		*dst = s.Value
	}
}

// file decodes a file path; a relative one is resolved against the directory
// of the configuration file.
func (d *decoder) file(n *yaml.Node, path string, dst *string) {
	var s string
	d.str(n, path, &s)
	if s != "" && !filepath.IsAbs(s) {
		s = filepath.Join(d.baseDir, s)
	}
	*dst = s
}

func (d *decoder) boolean(n *yaml.Node, path string, dst *bool) {
	s := d.scalar(n, path)
	if s == nil {
		return
	}
	var b bool
	if s.ShortTag() != "!!bool" || s.Decode(&b) != nil {
		d.errorAt(s, path, "expected true or false, got %s", describe(s))
		return
	}
	*dst = b
}

// integer decodes a decimal integer.
func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	s := d.scalar(n, path)
	if s == nil {
		return 0, false
	}
	if s.ShortTag() == "!!int" {
		if v, err := strconv.ParseInt(strings.TrimPrefix(s.Value, "+"), 10, 64); err == nil {
			return v, true
		}
	}
	d.errorAt(s, path, "expected a decimal integer, got %s", describe(s))
	return 0, false
}

func (d *decoder) intValue(n *yaml.Node, path string, dst *int) {
	v, ok := d.integer(n, path)
	if !ok {
		return
	}
	if int64(int(v)) != v {
		d.errorAt(resolve(n), path, "%d is out of range", v)
		return
	}
	*dst = int(v)
}

// bounded decodes an integer that must lie in [lo, hi], typically the range
// of the field's type.
func (d *decoder) bounded(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	v, ok := d.integer(n, path)
	if !ok {
		return 0, false
	}
	if v < lo || v > hi {
		d.errorAt(resolve(n), path, "%s", rangeMsg(v, lo, hi))
		return 0, false
	}
	return v, true
}

func rangeMsg(v, lo, hi int64) string {
	return fmt.Sprintf("must be between %d and %d, got %d", lo, hi, v)
}

func (d *decoder) duration(n *yaml.Node, path string, dst *time.Duration) {
	if v, ok := parseScalar(d, n, path, parseDuration); ok {
		*dst = v
	}
}

// parseScalar decodes a scalar with parse, whose error message is reported
// as is.
func parseScalar[T any](d *decoder, n *yaml.Node, path string, parse func(string) (T, error)) (T, bool) {
	var zero T
	s := d.scalar(n, path)
	if s == nil {
		return zero, false
	}
	v, err := parse(s.Value)
	if err != nil {
		d.errorAt(s, path, "%v", err)
		return zero, false
	}
	return v, true
}

var digits = regexp.MustCompile(`^[0-9]+$`)

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		if digits.MatchString(s) {
			return 0, fmt.Errorf("invalid duration %q (missing unit, e.g. \"%ss\")", s, s)
		}
		return 0, fmt.Errorf("invalid duration %q (want e.g. \"250ms\", \"10s\", \"1m\")", s)
	}
	return v, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q", s)
	}
	return a, nil
}

func parseAddrPort(s string) (netip.AddrPort, error) {
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("invalid address %q (want IP:port, e.g. 192.0.2.1:53 or [2001:db8::1]:53)", s)
	}
	return a, nil
}

// parseOptionalAddrPort is parseAddrPort where "" means unset.
func parseOptionalAddrPort(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, nil
	}
	return parseAddrPort(s)
}

// parseOptionalAddr is parseAddr where "" means unset.
func parseOptionalAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return parseAddr(s)
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %q (want e.g. 192.0.2.53/32 or 2001:db8::53/128)", s)
	}
	return p, nil
}
