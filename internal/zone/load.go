package zone

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Record is a parsed record with the place it came from.
type Record struct {
	RR   dns.RR
	File string
	Line int // 0 when unknown
}

// Pos formats the record's place as file:line.
func (r Record) Pos() string {
	switch {
	case r.File == "" && r.Line == 0:
		return "(input)"
	case r.Line == 0:
		return r.File
	}
	return r.File + ":" + strconv.Itoa(r.Line)
}

// ErrInvalid marks a zone that failed validation; the joined errors name each
// offending record.
var ErrInvalid = errors.New("invalid zone")

// Load reads an RFC 1035 master file for origin and builds the zone. Errors
// name the file and line of each problem. Records are built into the zone as
// they are parsed, so the parsed form of the whole file is never held.
//
// The file is read by the fast parser (fastparse.go); when it meets syntax
// outside its subset, or the zone has any problem, the file is parsed again
// with miekg/dns's ZoneParser, whose result and error messages are the
// reference.
func Load(origin, path string) (*Zone, error) {
	if z, err := loadFast(origin, path); err == nil {
		return z, nil
	}
	return loadSlow(origin, path)
}

// loadFast loads with the fast parser; any error means "use loadSlow".
func loadFast(origin, path string) (*Zone, error) {
	b, err := newBuilder(origin, 0)
	if err != nil {
		return nil, err
	}
	if err := fastParse(b, origin, path); err != nil {
		return nil, err
	}
	if len(b.errs) > 0 {
		return nil, errFallback
	}
	z, err := b.build()
	if err != nil {
		return nil, errFallback // ZoneParser's pass writes the messages
	}
	z.Source = path
	return z, nil
}

// loadSlow loads with miekg/dns's ZoneParser.
func loadSlow(origin, path string) (*Zone, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G703: the zone file named by the configuration
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", origin, err)
	}
	b, err := newBuilder(origin, 0)
	if err != nil {
		return nil, err
	}
	if err := parse(data, origin, path, b.addRecord); err != nil {
		return nil, fmt.Errorf("zone %s: %w", origin, err)
	}
	z, err := b.build()
	if err != nil {
		return nil, err
	}
	z.Source = path
	return z, nil
}

// Parse reads master-file records. $INCLUDE is followed relative to the
// including file (only when file names a real file). Every record carries the
// file and line where its entry starts.
func Parse(r io.Reader, origin, file string) ([]Record, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var recs []Record
	err = parse(data, origin, file, func(rec Record) { recs = append(recs, rec) })
	return recs, err
}

// parse calls fn for every record of the master file in data. When the
// position scanner and the parser disagree on the number of entries, lines
// would be wrong: the records then carry line -1 and the builder drops all
// lines (noLines).
func parse(data []byte, origin, file string, fn func(Record)) error {
	origin = dns.Fqdn(origin)
	includes := file != "" && file != "-"
	places, scanErr := scanEntries(data, file, includes, 0, make([]place, 0, bytes.Count(data, []byte{'\n'})+1))
	zp := dns.NewZoneParser(bytes.NewReader(data), origin, file)
	zp.SetIncludeAllowed(includes)
	zp.SetDefaultTTL(3600)
	i := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rec := Record{RR: rr, File: file}
		if scanErr == nil && i < len(places) {
			rec.File, rec.Line = places[i].file, places[i].line
		}
		i++
		fn(rec)
	}
	if err := zp.Err(); err != nil {
		return positioned(err)
	}
	if scanErr == nil && len(places) != i {
		fn(Record{Line: -1})
	}
	return nil
}

type place struct {
	file string
	line int
}

// scanEntries walks master-file text the way the parser does and returns the
// position of every entry that yields a record, in order. It understands
// comments, quotes, escapes, parentheses, $INCLUDE and $GENERATE.
func scanEntries(data []byte, file string, includes bool, depth int, out []place) ([]place, error) {
	if depth > 20 {
		return out, errors.New("$INCLUDE nesting too deep")
	}
	line := 1
	paren := 0
	inQuote := false
	atLineStart := true
	// Only the first two tokens of an entry matter (directive and its
	// argument); only directives' tokens are kept as text.
	var tokens []string
	var cur []byte
	entryLine := 0
	flushToken := func() {
		if len(cur) == 0 {
			return
		}
		switch {
		case len(tokens) == 0 && cur[0] == '$',
			len(tokens) == 1 && strings.HasPrefix(tokens[0], "$"):
			tokens = append(tokens, string(cur))
		case len(tokens) < 2:
			tokens = append(tokens, "x")
		}
		cur = cur[:0]
	}
	endEntry := func() error {
		flushToken()
		if len(tokens) == 0 && entryLine == 0 {
			return nil
		}
		var err error
		out, err = entry(tokens, file, entryLine, includes, depth, out)
		tokens = tokens[:0]
		entryLine = 0
		return err
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inQuote {
			switch c {
			case '\\':
				cur = append(cur, c)
				if i+1 < len(data) {
					i++
					cur = append(cur, data[i])
					if data[i] == '\n' {
						line++
					}
				}
			case '"':
				inQuote = false
				cur = append(cur, c)
			case '\n':
				line++
				cur = append(cur, c)
			default:
				cur = append(cur, c)
			}
			continue
		}
		switch c {
		case ';':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i-- // let the newline be handled
		case '\n':
			flushToken()
			if paren == 0 {
				if err := endEntry(); err != nil {
					return out, err
				}
			}
			line++
			atLineStart = true
			continue
		case ' ', '\t', '\r':
			flushToken()
			if atLineStart && paren == 0 && entryLine == 0 && c != '\r' {
				// A record with a blank owner.
				entryLine = line
				tokens = append(tokens, "")
			}
		case '(':
			flushToken()
			paren++
			if entryLine == 0 {
				entryLine = line
			}
		case ')':
			flushToken()
			if paren > 0 {
				paren--
			}
		case '"':
			inQuote = true
			cur = append(cur, c)
			if entryLine == 0 {
				entryLine = line
			}
		case '\\':
			cur = append(cur, c)
			if i+1 < len(data) {
				i++
				cur = append(cur, data[i])
			}
			if entryLine == 0 {
				entryLine = line
			}
		default:
			cur = append(cur, c)
			if entryLine == 0 {
				entryLine = line
			}
		}
		atLineStart = false
	}
	return out, endEntry()
}

// entry classifies one logical entry.
func entry(tokens []string, file string, line int, includes bool, depth int, out []place) ([]place, error) {
	// A blank-owner line that holds nothing but whitespace is no entry.
	if len(tokens) == 1 && tokens[0] == "" {
		return out, nil
	}
	if len(tokens) == 0 {
		return out, nil
	}
	if !strings.HasPrefix(tokens[0], "$") {
		return append(out, place{file, line}), nil
	}
	switch strings.ToUpper(tokens[0]) {
	case "$ORIGIN", "$TTL":
		return out, nil
	case "$INCLUDE":
		if !includes || len(tokens) < 2 {
			return out, nil
		}
		path := tokens[1]
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(file), path)
		}
		data, err := os.ReadFile(path) //nolint:gosec // G703: an $INCLUDE of the zone file, as ZoneParser opens it
		if err != nil {
			return out, err
		}
		return scanEntries(data, path, includes, depth+1, out)
	case "$GENERATE":
		if len(tokens) < 2 {
			return out, errors.New("bad $GENERATE")
		}
		n, err := generateCount(tokens[1])
		if err != nil {
			return out, err
		}
		for range n {
			out = append(out, place{file, line})
		}
		return out, nil
	}
	return append(out, place{file, line}), nil
}

func generateCount(r string) (int, error) {
	step := 1
	if i := strings.IndexByte(r, '/'); i >= 0 {
		s, err := strconv.Atoi(r[i+1:])
		if err != nil || s < 1 {
			return 0, errors.New("bad $GENERATE step")
		}
		step = s
		r = r[:i]
	}
	a, b, ok := strings.Cut(r, "-")
	if !ok {
		return 0, errors.New("bad $GENERATE range")
	}
	start, err1 := strconv.Atoi(a)
	stop, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || stop < start {
		return 0, errors.New("bad $GENERATE range")
	}
	return (stop-start)/step + 1, nil
}

// WriteTo prints the zone in master-file form, canonical order, one record per
// line; used for exports and golden tests.
func (z *Zone) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	var err error
	var line []byte
	z.Nodes(func(n *Node) {
		if err != nil {
			return
		}
		// SOA first at the apex, as transfers and readers expect.
		var buf [8]int
		order := buf[:0]
		for i := range n.Sets {
			if n.Sets[i].Type == dns.TypeSOA {
				order = append([]int{i}, order...)
			} else {
				order = append(order, i)
			}
		}
		var owner, text string // the owner's presentation form, and as miekg/dns prints it
		for _, i := range order {
			if set := &n.Sets[i]; addressesOnly(set) {
				if text == "" {
					if text, _, err = dns.UnpackDomainName(n.Name, 0); err != nil {
						return
					}
				}
				if line, err = writeAddresses(bw, line, text, set); err != nil {
					return
				}
				continue
			}
			if owner == "" {
				owner = NameString(n.Name)
			}
			rrs, e := n.Sets[i].RRs(owner)
			if e != nil {
				err = e
				return
			}
			for _, rr := range rrs {
				_, _ = bw.WriteString(rr.String()) // a bufio.Writer keeps its error: WriteByte returns it
				if e := bw.WriteByte('\n'); e != nil {
					err = e
					return
				}
			}
		}
	})
	if err == nil {
		err = bw.Flush()
	}
	return cw.n, err
}

// addressesOnly reports whether set is an A or AAAA RRset without
// signatures whose addresses print as net.IP does (no IPv4-mapped IPv6
// address: miekg/dns prints those its own way): WriteTo prints such sets
// itself, without a dns.RR and a string per record, exactly as miekg/dns
// would. They are most of a large zone's records; the node writes its whole
// copy after a transfer, and the garbage of a dns.RR per record made that
// seconds of work and collection.
func addressesOnly(set *RRset) bool {
	if set.sigs != nil || set.Type != dns.TypeA && set.Type != dns.TypeAAAA {
		return false
	}
	for rd := range set.All() {
		switch {
		case set.Type == dns.TypeA && len(rd) == 4:
		case set.Type == dns.TypeAAAA && len(rd) == 16 && !netip.AddrFrom16([16]byte(rd)).Is4In6():
		default:
			return false
		}
	}
	return true
}

// writeAddresses prints the records of an addressesOnly set, owner as
// miekg/dns prints names, as miekg/dns prints them, using line as scratch
// space; it returns line for the next call.
func writeAddresses(w io.Writer, line []byte, owner string, set *RRset) ([]byte, error) {
	hdr := (&dns.RR_Header{Name: owner, Rrtype: set.Type, Class: dns.ClassINET, Ttl: set.TTL}).String()
	for rd := range set.All() {
		line = append(line[:0], hdr...)
		if set.Type == dns.TypeA {
			line = netip.AddrFrom4([4]byte(rd)).AppendTo(line)
		} else {
			line = netip.AddrFrom16([16]byte(rd)).AppendTo(line)
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return line, err
		}
	}
	return line, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// parseErrRE picks apart miekg/dns's "FILE: dns: MSG: TOKEN at line: L:C".
var parseErrRE = regexp.MustCompile(`^(?:(.*): )?dns: (.*) at line: (\d+):(\d+)$`)

// positioned rewrites a parser error as "file:line:column: message", the form
// every other load error uses.
func positioned(err error) error {
	var pe *dns.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	m := parseErrRE.FindStringSubmatch(pe.Error())
	if m == nil {
		return err
	}
	file := m[1]
	if file == "" {
		file = "(input)"
	}
	return fmt.Errorf("%s:%s:%s: %s: %w", file, m[3], m[4], m[2], ErrSyntax)
}

// ErrSyntax marks master-file syntax errors.
var ErrSyntax = errors.New("syntax error")
