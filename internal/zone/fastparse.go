package zone

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
)

// The fast master-file parser.
//
// miekg/dns's ZoneParser allocates a dns.RR and several strings per record
// and was most of the time of loading a large zone. fastParse reads the
// common subset of the format and hands wire-form records straight to the
// builder: $ORIGIN, $TTL, $INCLUDE, relative names and "@", blank owners,
// TTL and class IN in either order, parentheses, comments, quoted strings,
// \DDD and \X escapes in names, and the types A, AAAA, NS, CNAME, PTR,
// DNAME, MX, SRV, SOA, TXT, DS, DNSKEY, RRSIG and NSEC. A record of another
// type, or with rdata in another form, is given to ZoneParser on its own
// (slowRecord).
//
// Whatever else it does not understand exactly the way ZoneParser does, and
// every error, makes it stop with errFallback, and Load then parses the whole
// zone again with ZoneParser: the result (zone or error message) is the same
// either way, which FuzzFastParse checks.

// errFallback means the fast parser met input outside its subset.
var errFallback = errors.New("zone: input outside the fast parser's subset")

// fastReadSize is the read buffer; an entry longer than that grows it.
// (A variable for tests, which make it small to cut entries at every
// place.)
var fastReadSize = 1 << 20

// slowRecordsMax is how many records slowRecord takes before the share of
// them (over a fifth of all) makes the whole file go to ZoneParser.
const slowRecordsMax = 256

type fastToken struct {
	s      []byte
	quoted bool
	// next is the byte after the token (0 at the end of the input).
	next byte
	// end is the offset just after the token in the entry, depth the
	// parenthesis depth there.
	end, depth int
}

type fastParser struct {
	b        *builder
	file     string
	includes bool
	depth    int
	origin   []byte // wire form, letter case as written
	defTTL   uint32
	byDir    bool   // defTTL was set by $TTL
	owner    []byte // wire form of the last explicit owner
	hasOwner bool
	toks     []fastToken
	rdata    []byte
	name     []byte
	tmp      []byte            // scratch for joined base64/hex pieces
	types    map[string]uint16 // type mnemonics seen in RRSIG and NSEC
	// counts of records parsed here and handed to ZoneParser one by one
	// (shared with $INCLUDEd files)
	n *recordCounts
	// presentation forms of origin and owner for slowRecord, cached
	originText, ownerText string
}

type recordCounts struct{ fast, slow int }

// fastParse parses the master file at path into b. origin is the zone's
// origin (fully qualified presentation form).
func fastParse(b *builder, origin, path string) error {
	ow, ok := appendName(nil, []byte(dns.Fqdn(origin)), nil)
	if !ok {
		return errFallback
	}
	p := &fastParser{b: b, file: path, includes: path != "" && path != "-", origin: ow, defTTL: 3600,
		rdata: make([]byte, 0, 512), name: make([]byte, 0, wire.MaxName+1), n: &recordCounts{}}
	return p.parseFile(path)
}

func (p *fastParser) parseFile(path string) error {
	f, err := os.Open(path) //nolint:gosec // G703: the configured zone file and its $INCLUDEs, as ZoneParser opens them
	if err != nil {
		return errFallback
	}
	defer f.Close()
	size := fastReadSize
	if fi, err := f.Stat(); err == nil && fi.Size() < int64(size) {
		size = int(fi.Size()) + 1
	}
	return p.parse(f, size)
}

// parse reads r in chunks and parses entry by entry; an entry cut by the
// end of the buffer is parsed again once more data is in.
func (p *fastParser) parse(r io.Reader, size int) error {
	buf := make([]byte, 0, size)
	line := 1
	eof := false
	for {
		for !eof && len(buf) < cap(buf) {
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return errFallback
			}
		}
		off := 0
		for off < len(buf) {
			n, lines, err := p.entry(buf[off:], eof, line)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			off += n
			line += lines
		}
		if eof {
			return nil
		}
		rest := copy(buf, buf[off:])
		buf = buf[:rest]
		if rest == cap(buf) {
			nb := make([]byte, rest, 2*cap(buf))
			copy(nb, buf)
			buf = nb
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// tokenEnd reports whether c may follow a token without changing how
// ZoneParser's lexer splits it.
func tokenEnd(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ';'
}

// entry tokenizes and handles the entry (one line, or several joined by
// parentheses) at the start of data. It returns the bytes and lines it
// consumed, 0 when data does not hold the whole entry and more can be read.
func (p *fastParser) entry(data []byte, eof bool, line int) (int, int, error) {
	toks := p.toks[:0]
	blank := isSpace(data[0])
	if data[0] == '(' || data[0] == ')' || data[0] == '"' {
		return 0, 0, errFallback
	}
	depth, i, lines := 0, 0, 0
	// odd marks quotes touching other text: only ZoneParser (slowRecord)
	// takes such an entry.
	odd := false
loop:
	for {
		if i >= len(data) {
			if !eof {
				return 0, 0, nil
			}
			if depth > 0 {
				return 0, 0, errFallback
			}
			break
		}
		c := data[i]
		switch c {
		case ' ', '\t':
			i++
		case '\r':
			if i+1 >= len(data) && !eof {
				return 0, 0, nil
			}
			if i+1 >= len(data) || data[i+1] != '\n' {
				return 0, 0, errFallback
			}
			i++
		case '\n':
			i++
			lines++
			if depth == 0 {
				break loop
			}
		case ';':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			if i >= len(data) && !eof {
				return 0, 0, nil
			}
		case '(':
			depth++
			i++
		case ')':
			depth--
			if depth < 0 {
				return 0, 0, errFallback
			}
			i++
		case '"':
			j := i + 1
			for j < len(data) && data[j] != '"' {
				if d := data[j]; d == '\\' || d == '\n' || d == '\r' {
					return 0, 0, errFallback
				}
				j++
			}
			if j+1 >= len(data) {
				if !eof {
					return 0, 0, nil
				}
				if j >= len(data) {
					return 0, 0, errFallback
				}
			}
			var next byte
			if j+1 < len(data) {
				next = data[j+1]
				if !tokenEnd(next) && next != ')' {
					odd = true // text right after a quote
				}
			}
			toks = append(toks, fastToken{s: data[i+1 : j], quoted: true, next: next, end: j + 1, depth: depth})
			i = j + 1
		default:
			j := i
		token:
			for j < len(data) {
				switch data[j] {
				case ' ', '\t', '\n', '\r', ';':
					break token
				case '"':
					odd = true // a quote right after text
					break token
				case '(', ')':
					return 0, 0, errFallback
				case '\\':
					if j+1 >= len(data) {
						j = len(data)
						break token // more data, or a trailing backslash
					}
					if d := data[j+1]; d == '\n' || d == '\r' {
						return 0, 0, errFallback
					}
					j += 2
					continue
				}
				j++
			}
			if j >= len(data) {
				if !eof {
					return 0, 0, nil
				}
				if trailingEscape(data[i:j]) {
					return 0, 0, errFallback
				}
			}
			var next byte
			if j < len(data) {
				next = data[j]
				// Inside parentheses ZoneParser's lexer does not end a
				// token at a newline or parenthesis: "1\n2" is "12".
				if depth > 0 {
					ends, more := tokenEndsInParens(data[j:], depth, eof)
					if more {
						return 0, 0, nil
					}
					if !ends {
						return 0, 0, errFallback
					}
				}
			}
			toks = append(toks, fastToken{s: data[i:j], next: next, end: j, depth: depth})
			i = j
		}
	}
	p.toks = toks
	if len(toks) == 0 {
		return i, lines, nil
	}
	return i, lines, p.record(data[:i], toks, blank, odd, line)
}

// trailingEscape reports whether tok ends in an unpaired backslash.
func trailingEscape(tok []byte) bool {
	n := 0
	for k := len(tok) - 1; k >= 0 && tok[k] == '\\'; k-- {
		n++
	}
	return n%2 == 1
}

// tokenEndsInParens reports whether, inside parentheses, ZoneParser's lexer
// ends the token where rest begins: it skips newlines and parentheses there,
// so the token goes on unless a blank, a comment, a quote or a newline
// outside the parentheses comes first. more means rest is too short to
// tell.
func tokenEndsInParens(rest []byte, depth int, eof bool) (ends, more bool) {
	for _, c := range rest {
		switch c {
		case ' ', '\t', ';', '"':
			return true, false
		case '\r':
		case '\n':
			if depth == 0 {
				return true, false
			}
		case '(':
			depth++
		case ')':
			depth--
		default:
			return false, false
		}
	}
	return eof, !eof
}

// record handles one entry's tokens.
func (p *fastParser) record(entry []byte, toks []fastToken, blank, odd bool, line int) error {
	rest := toks
	if !blank {
		t := toks[0]
		if t.quoted || !isSpace(t.next) {
			return errFallback
		}
		if t.s[0] == '$' {
			return p.directive(toks)
		}
		owner, ok := appendName(p.owner[:0], t.s, p.origin)
		if !ok {
			return errFallback
		}
		p.owner, p.hasOwner, p.ownerText = owner, true, ""
		rest = toks[1:]
	} else if !p.hasOwner {
		return errFallback
	}
	ttl := p.defTTL
	gotTTL, gotClass := false, false
	var typ uint16
	var typeTok fastToken // a type outside the subset
	for len(rest) > 0 && typ == 0 && typeTok.s == nil {
		t := rest[0]
		rest = rest[1:]
		if t.quoted || !isSpace(t.next) {
			return errFallback
		}
		switch {
		case len(t.s) == 2 && t.s[0]|0x20 == 'i' && t.s[1]|0x20 == 'n':
			if gotClass {
				return errFallback
			}
			gotClass = true
		case t.s[0] >= '0' && t.s[0] <= '9':
			v, ok := parseUint(t.s, math.MaxUint32)
			if !ok || gotTTL || len(t.s) > 10 {
				return errFallback
			}
			gotTTL, ttl = true, uint32(v)
			if !p.byDir {
				p.defTTL = ttl
			}
		default:
			typ = fastType(t.s)
			if typ == 0 {
				if !otherType(t.s) {
					return errFallback
				}
				typeTok = t
			}
		}
	}
	if len(rest) == 0 {
		return errFallback
	}
	if typeTok.s == nil && !rest[0].quoted && len(rest[0].s) == 2 && rest[0].s[0] == '\\' && rest[0].s[1] == '#' {
		typeTok = toks[len(toks)-len(rest)-1] // RFC 3597 form of a known type
	}
	if typeTok.s != nil {
		return p.slowRecord(entry, typeTok, ttl, line)
	}
	// Rdata in a form the fast parser does not take (quotes touching
	// text, an algorithm mnemonic, a syntax error ...) goes to ZoneParser
	// too, which also reports the error.
	typeTok = toks[len(toks)-len(rest)-1]
	if odd {
		return p.slowRecord(entry, typeTok, ttl, line)
	}
	rd, ok := p.rdataWire(typ, rest)
	if !ok {
		return p.slowRecord(entry, typeTok, ttl, line)
	}
	p.rdata = rd
	p.b.addWire(p.owner, typ, ttl, rd, p.file, line)
	p.n.fast++
	return nil
}

// slowRecord has ZoneParser parse one record whose type (or rdata form) the
// fast parser does not handle: the owner (absolute), the TTL and class IN
// explicit, then the type token and the rest of the entry as written. The
// lexer is then in the state it would be in on the whole file, as long as
// no parenthesis is open at the type (else the whole file falls back).
func (p *fastParser) slowRecord(entry []byte, typeTok fastToken, ttl uint32, line int) error {
	if typeTok.depth != 0 {
		return errFallback
	}
	// One ZoneParser per record costs more than one for the whole file:
	// a zone made mostly of such records (NSEC3-signed, say) is left to it.
	p.n.slow++
	if p.n.slow > slowRecordsMax && p.n.slow > p.n.fast/4 {
		return errFallback
	}
	if p.ownerText == "" {
		p.ownerText = NameString(p.owner)
	}
	if p.originText == "" {
		p.originText = NameString(p.origin)
	}
	text := make([]byte, 0, 64+len(entry))
	text = append(text, p.ownerText...)
	text = append(text, ' ')
	text = strconv.AppendUint(text, uint64(ttl), 10)
	text = append(text, " IN "...)
	text = append(text, typeTok.s...)
	text = append(text, entry[typeTok.end:]...)
	if text[len(text)-1] != '\n' {
		text = append(text, '\n')
	}
	// Some rdata parsers read on past the end of a short entry; in the
	// file they would take the next line's tokens, which differ from
	// anything here. So the parser must have read exactly this entry,
	// its newline included, no more; a line it cannot take as a record
	// follows, to be read past.
	end := len(text)
	text = append(text, "..\n"...)
	r := &countingReader{b: text}
	zp := dns.NewZoneParser(r, p.originText, p.file)
	rr, ok := zp.Next()
	if !ok || zp.Err() != nil || r.n != end {
		return errFallback
	}
	if _, more := zp.Next(); more || zp.Err() == nil {
		return errFallback
	}
	p.b.addRecord(Record{RR: rr, File: p.file, Line: line})
	return nil
}

// countingReader is a bytes reader that counts the bytes read; as an
// io.ByteReader it is read byte by byte, without read-ahead.
type countingReader struct {
	b []byte
	n int
}

func (c *countingReader) ReadByte() (byte, error) {
	if c.n >= len(c.b) {
		return 0, io.EOF
	}
	c.n++
	return c.b[c.n-1], nil
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= len(c.b) {
		return 0, io.EOF
	}
	k := copy(p, c.b[c.n:])
	c.n += k
	return k, nil
}

// otherType reports whether ZoneParser's lexer takes tok for a type (and
// not for a class): a mnemonic it knows or TYPEnnn.
func otherType(tok []byte) bool {
	u := strings.ToUpper(string(tok))
	if _, ok := dns.StringToClass[u]; ok || strings.HasPrefix(u, "CLASS") {
		return false
	}
	if _, ok := dns.StringToType[u]; ok {
		return true
	}
	if !strings.HasPrefix(u, "TYPE") {
		return false
	}
	_, err := strconv.ParseUint(u[4:], 10, 16)
	return err == nil
}

// rdataWire converts the rdata tokens of a record of type t.
func (p *fastParser) rdataWire(t uint16, toks []fastToken) ([]byte, bool) {
	rd := p.rdata[:0]
	for _, tk := range toks {
		if tk.quoted && t != dns.TypeTXT {
			return nil, false
		}
	}
	want := 0
	switch t {
	case dns.TypeA:
		want = 1
		a, ok := parseIPv4(toks[0].s)
		if !ok {
			return nil, false
		}
		rd = append(rd, a[:]...)
	case dns.TypeAAAA:
		want = 1
		s := toks[0].s
		if !hasColon(s) {
			return nil, false
		}
		for _, c := range s {
			if c == '%' {
				return nil, false
			}
		}
		a, err := netip.ParseAddr(unsafe.String(&s[0], len(s)))
		if err != nil || a.Zone() != "" {
			return nil, false
		}
		b := a.As16()
		rd = append(rd, b[:]...)
	case dns.TypeNS, dns.TypeCNAME, dns.TypePTR, dns.TypeDNAME:
		want = 1
		var ok bool
		if rd, ok = appendName(rd, toks[0].s, p.origin); !ok {
			return nil, false
		}
	case dns.TypeMX:
		want = 2
		if len(toks) != want {
			return nil, false
		}
		v, ok := parseUint(toks[0].s, math.MaxUint16)
		if !ok {
			return nil, false
		}
		rd = append(rd, byte(v>>8), byte(v))
		if rd, ok = appendName(rd, toks[1].s, p.origin); !ok {
			return nil, false
		}
	case dns.TypeSRV:
		want = 4
		if len(toks) != want {
			return nil, false
		}
		for _, tk := range toks[:3] {
			v, ok := parseUint(tk.s, math.MaxUint16)
			if !ok {
				return nil, false
			}
			rd = append(rd, byte(v>>8), byte(v))
		}
		var ok bool
		if rd, ok = appendName(rd, toks[3].s, p.origin); !ok {
			return nil, false
		}
	case dns.TypeSOA:
		want = 7
		if len(toks) != want {
			return nil, false
		}
		var ok bool
		if rd, ok = appendName(rd, toks[0].s, p.origin); !ok {
			return nil, false
		}
		if rd, ok = appendName(rd, toks[1].s, p.origin); !ok {
			return nil, false
		}
		for _, tk := range toks[2:] {
			v, ok := parseUint(tk.s, math.MaxUint32)
			if !ok {
				return nil, false
			}
			rd = append(rd, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		}
	case dns.TypeRRSIG:
		// type covered, algorithm, labels, original TTL, expiration,
		// inception, key tag, signer, signature (base64, in pieces)
		want = len(toks)
		if len(toks) < 8 {
			return nil, false
		}
		tc, ok := p.typeCode(toks[0].s)
		if !ok {
			return nil, false
		}
		rd = append(rd, byte(tc>>8), byte(tc))
		alg, ok1 := parseUint(toks[1].s, math.MaxUint8)
		labels, ok2 := parseUint(toks[2].s, math.MaxUint8)
		ottl, ok3 := parseUint(toks[3].s, math.MaxUint32)
		if !ok1 || !ok2 || !ok3 {
			return nil, false
		}
		rd = append(rd, byte(alg), byte(labels), byte(ottl>>24), byte(ottl>>16), byte(ottl>>8), byte(ottl))
		for _, tk := range toks[4:6] {
			v, ok := sigTime(tk.s)
			if !ok {
				return nil, false
			}
			rd = append(rd, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		}
		v, ok := parseUint(toks[6].s, math.MaxUint16)
		if !ok {
			return nil, false
		}
		rd = append(rd, byte(v>>8), byte(v))
		if rd, ok = appendName(rd, toks[7].s, p.origin); !ok {
			return nil, false
		}
		if rd, ok = p.appendBase64(rd, toks[8:]); !ok {
			return nil, false
		}
	case dns.TypeNSEC:
		want = len(toks)
		var ok bool
		if rd, ok = appendName(rd, toks[0].s, p.origin); !ok {
			return nil, false
		}
		if rd, ok = p.appendBitmap(rd, toks[1:]); !ok {
			return nil, false
		}
	case dns.TypeDNSKEY, dns.TypeDS:
		// DNSKEY: flags, protocol, algorithm, key (base64, in pieces);
		// DS: key tag, algorithm, digest type, digest (hex, in pieces)
		want = len(toks)
		if len(toks) < 3 {
			return nil, false
		}
		v, ok := parseUint(toks[0].s, math.MaxUint16)
		if !ok {
			return nil, false
		}
		rd = append(rd, byte(v>>8), byte(v))
		for _, tk := range toks[1:3] {
			v, ok := parseUint(tk.s, math.MaxUint8)
			if !ok {
				return nil, false
			}
			rd = append(rd, byte(v))
		}
		if t == dns.TypeDNSKEY {
			rd, ok = p.appendBase64(rd, toks[3:])
		} else {
			rd, ok = p.appendHex(rd, toks[3:])
		}
		if !ok {
			return nil, false
		}
	case dns.TypeTXT:
		for _, tk := range toks {
			if len(tk.s) > 255 {
				return nil, false
			}
			if !tk.quoted {
				for _, c := range tk.s {
					if c == '\\' {
						return nil, false
					}
				}
			}
			rd = append(rd, byte(len(tk.s)))
			rd = append(rd, tk.s...)
		}
		want = len(toks)
	default:
		return nil, false
	}
	if len(toks) != want || len(rd) > math.MaxUint16 {
		return nil, false
	}
	return rd, true
}

// join concatenates the tokens (ZoneParser's endingToString) into scratch.
func (p *fastParser) join(toks []fastToken) []byte {
	b := p.tmp[:0]
	for _, tk := range toks {
		b = append(b, tk.s...)
	}
	p.tmp = b
	return b
}

// appendBase64 appends the decoded base64 of the tokens joined.
func (p *fastParser) appendBase64(rd []byte, toks []fastToken) ([]byte, bool) {
	src := p.join(toks)
	n := len(rd)
	rd = slices.Grow(rd, base64.StdEncoding.DecodedLen(len(src)))
	m, err := base64.StdEncoding.Decode(rd[n:n+base64.StdEncoding.DecodedLen(len(src))], src)
	if err != nil {
		return nil, false
	}
	return rd[:n+m], true
}

// appendHex appends the decoded hex of the tokens joined.
func (p *fastParser) appendHex(rd []byte, toks []fastToken) ([]byte, bool) {
	src := p.join(toks)
	rd, err := hex.AppendDecode(rd, src)
	return rd, err == nil
}

// sigTime parses an RRSIG time as ZoneParser does: YYYYMMDDHHmmSS
// (dns.StringToTime), else seconds.
func sigTime(tok []byte) (uint32, bool) {
	if v, err := dns.StringToTime(string(tok)); err == nil {
		return v, true
	}
	v, ok := parseUint(tok, math.MaxUint32)
	return uint32(v), ok
}

// typeCode returns the type a mnemonic or TYPEnnn stands for (cached).
// ZoneParser reads the RRSIG's type covered and the NSEC bitmap so; other
// forms it accepts are left to it.
func (p *fastParser) typeCode(tok []byte) (uint16, bool) {
	if t, ok := p.types[string(tok)]; ok {
		return t, true
	}
	u := strings.ToUpper(string(tok))
	t, ok := dns.StringToType[u]
	if !ok {
		if !strings.HasPrefix(u, "TYPE") {
			return 0, false
		}
		v, ok := parseUint(tok[4:], math.MaxUint16)
		if !ok {
			return 0, false
		}
		t = uint16(v)
	}
	if p.types == nil {
		p.types = make(map[string]uint16)
	}
	if len(p.types) < 256 {
		p.types[string(tok)] = t
	}
	return t, true
}

// appendBitmap appends the NSEC type bitmap (RFC 4034 §4.1.2) of the type
// tokens, which must be in increasing order (else ZoneParser decides).
func (p *fastParser) appendBitmap(rd []byte, toks []fastToken) ([]byte, bool) {
	last := -1
	window, start := -1, 0
	for _, tk := range toks {
		t, ok := p.typeCode(tk.s)
		if !ok || int(t) <= last {
			return nil, false
		}
		last = int(t)
		w := int(t >> 8)
		if w != window {
			window = w
			rd = append(rd, byte(w), 0)
			start = len(rd)
		}
		octet := int(t&0xff) / 8
		for len(rd)-start <= octet {
			rd = append(rd, 0)
		}
		rd[start-1] = byte(len(rd) - start)
		rd[start+octet] |= 0x80 >> (t % 8)
	}
	return rd, true
}

func hasColon(s []byte) bool {
	for _, c := range s {
		if c == ':' {
			return true
		}
	}
	return false
}

// directive handles $ORIGIN, $TTL and $INCLUDE.
func (p *fastParser) directive(toks []fastToken) error {
	d := toks[0].s
	if len(toks) < 2 || toks[1].quoted {
		return errFallback
	}
	switch {
	case equalFold(d, "$TTL"):
		if len(toks) != 2 || len(toks[1].s) > 10 {
			return errFallback
		}
		v, ok := parseUint(toks[1].s, math.MaxUint32)
		if !ok {
			return errFallback
		}
		p.defTTL, p.byDir = uint32(v), true
	case equalFold(d, "$ORIGIN"):
		if len(toks) != 2 {
			return errFallback
		}
		o, ok := appendName(nil, toks[1].s, p.origin)
		if !ok {
			return errFallback
		}
		p.origin, p.originText = o, ""
	case equalFold(d, "$INCLUDE"):
		if !p.includes || p.depth >= 7 || len(toks) > 3 {
			return errFallback
		}
		origin := p.origin
		if len(toks) == 3 {
			if toks[2].quoted || !isSpace(toks[1].next) {
				return errFallback
			}
			o, ok := appendName(nil, toks[2].s, p.origin)
			if !ok {
				return errFallback
			}
			origin = o
		}
		path := string(toks[1].s)
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(p.file), path)
		}
		sub := &fastParser{b: p.b, file: path, includes: true, depth: p.depth + 1, origin: origin,
			defTTL: p.defTTL, byDir: p.byDir, rdata: p.rdata, name: p.name, n: p.n}
		return sub.parseFile(path)
	default:
		return errFallback
	}
	return nil
}

func equalFold(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// fastType returns the type for a mnemonic the fast parser handles, else 0.
func fastType(s []byte) uint16 {
	var u [10]byte
	if len(s) > len(u) {
		return 0
	}
	for i, c := range s {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		u[i] = c
	}
	switch string(u[:len(s)]) {
	case "A":
		return dns.TypeA
	case "AAAA":
		return dns.TypeAAAA
	case "NS":
		return dns.TypeNS
	case "CNAME":
		return dns.TypeCNAME
	case "PTR":
		return dns.TypePTR
	case "DNAME":
		return dns.TypeDNAME
	case "MX":
		return dns.TypeMX
	case "SRV":
		return dns.TypeSRV
	case "SOA":
		return dns.TypeSOA
	case "TXT":
		return dns.TypeTXT
	case "RRSIG":
		return dns.TypeRRSIG
	case "NSEC":
		return dns.TypeNSEC
	case "DNSKEY":
		return dns.TypeDNSKEY
	case "DS":
		return dns.TypeDS
	}
	return 0
}

// parseUint parses decimal digits (as strconv.ParseUint base 10) up to max.
func parseUint(s []byte, maxVal uint64) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > maxVal {
			return 0, false
		}
	}
	return v, true
}

// parseIPv4 parses a dotted quad as net.ParseIP does (no leading zeros).
func parseIPv4(s []byte) ([4]byte, bool) {
	var a [4]byte
	k, v, digits := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || k > 3 {
				return a, false
			}
			a[k] = byte(v)
			k++
			v, digits = 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || (digits == 1 && v == 0) {
			return a, false
		}
		v = v*10 + int(c-'0')
		digits++
		if v > 255 {
			return a, false
		}
	}
	return a, k == 4
}

// appendName appends the wire form of the presentation name s, relative to
// origin unless it ends in a dot, as ZoneParser and PackDomainName make it
// (letter case kept). ok is false for anything it does not handle exactly
// like them, invalid names included.
func appendName(dst, s, origin []byte) ([]byte, bool) {
	if len(s) == 0 {
		return nil, false
	}
	if len(s) == 1 && s[0] == '@' {
		if origin == nil {
			return nil, false
		}
		return append(dst, origin...), true
	}
	if len(s) == 1 && s[0] == '.' {
		return append(dst, 0), true
	}
	start := len(dst)
	lab := len(dst)
	dst = append(dst, 0)
	fqdn := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '.':
			l := len(dst) - lab - 1
			if l == 0 || l > 63 {
				return nil, false
			}
			dst[lab] = byte(l)
			if i == len(s)-1 {
				fqdn = true
				continue
			}
			lab = len(dst)
			dst = append(dst, 0)
		case '\\':
			if i+1 >= len(s) {
				return nil, false
			}
			d := s[i+1]
			if d >= '0' && d <= '9' {
				if i+3 >= len(s) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
					return nil, false
				}
				v := int(d-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
				if v > 255 {
					return nil, false
				}
				dst = append(dst, byte(v))
				i += 3
				continue
			}
			dst = append(dst, d)
			i++
		default:
			dst = append(dst, c)
		}
		if len(dst)-start > wire.MaxName {
			return nil, false
		}
	}
	if fqdn {
		dst = append(dst, 0)
	} else {
		l := len(dst) - lab - 1
		if l == 0 || l > 63 || origin == nil {
			return nil, false
		}
		dst[lab] = byte(l)
		dst = append(dst, origin...)
	}
	if len(dst)-start > wire.MaxName {
		return nil, false
	}
	return dst, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
