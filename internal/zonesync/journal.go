package zonesync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// A zone's journal, NAME.journal beside NAME.zone, holds the changes made
// since its zone file was written, so that a one-record change to a large
// zone writes that record, not the zone (a 1,000,000-name zone file is
// 61 MB and takes seconds to write). It starts with a header naming the
// SHA-256 of the zone file it continues; then one entry per persisted
// version: length, CRC-32C, and the change (serials from and to, the
// records deleted and added, in wire form). Loading applies the entries
// that continue the zone file's version in order; a torn entry at the end
// (a crash while appending) is cut off, so the node resumes from the
// version before it. A journal of another zone file (a crash after a new
// zone file was written, before its old journal was removed) is ignored
// and removed.
//
// Zone files under journalMinZone are rewritten whole on each change, as
// are versions not made from the one on disk by Apply (an AXFR); once a
// journal outgrows its zone file's size / journalShare, the next version
// is written whole and the journal removed.
const (
	journalMagic   = "anycastd zonesync journal 1\n"
	journalMinZone = 1 << 20
	journalShare   = 4
)

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

func (s *store) journalPath(name string) string { return s.path(name, ".journal") }

// journalFits reports whether the next version of a zone whose file has
// the SHA-256 sum and fileBytes bytes may go to its journal of
// journalBytes: the file is verified and large, the journal small beside
// it.
func (s *store) journalFits(sum string, fileBytes, journalBytes int64) bool {
	return sum != "" && fileBytes >= s.journalMin && journalBytes < fileBytes/journalShare
}

// appendJournal appends the change from one version of the zone to the
// next to its journal and fsyncs it; create starts a new journal for the
// zone file whose SHA-256 is base. It returns the bytes written.
func (s *store) appendJournal(name, base string, from, to uint32, del, add []zone.RR, create bool) (int64, error) {
	entry, err := journalEntry(from, to, del, add)
	if err != nil {
		return 0, fmt.Errorf("journal of %s: %w", name, err)
	}
	path := s.journalPath(name)
	var buf []byte
	flags := os.O_WRONLY | os.O_APPEND
	if create {
		buf = append([]byte(journalMagic), base+"\n"...)
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	buf = append(buf, entry...)
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return 0, fmt.Errorf("journal of %s: %w", name, err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && create {
		err = s.syncDirOf(filepath.Dir(path))
	}
	if err != nil {
		return 0, fmt.Errorf("journal of %s: %w", name, err)
	}
	return int64(len(buf)), nil
}

// journalEntry encodes one change: length and CRC-32C of the payload, then
// the payload (from, to, the counts, the records).
func journalEntry(from, to uint32, del, add []zone.RR) ([]byte, error) {
	p := make([]byte, 8, 64)
	p = binary.BigEndian.AppendUint32(p, from)
	p = binary.BigEndian.AppendUint32(p, to)
	p = binary.BigEndian.AppendUint32(p, uint32(len(del)))
	p = binary.BigEndian.AppendUint32(p, uint32(len(add)))
	for _, rr := range append(del[:len(del):len(del)], add...) {
		if len(rr.Name) > 255 || len(rr.Rdata) > 0xffff {
			return nil, fmt.Errorf("record of %d name and %d rdata bytes", len(rr.Name), len(rr.Rdata))
		}
		p = append(p, byte(len(rr.Name)))
		p = append(p, rr.Name...)
		p = binary.BigEndian.AppendUint16(p, rr.Type)
		p = binary.BigEndian.AppendUint32(p, rr.TTL)
		p = binary.BigEndian.AppendUint16(p, uint16(len(rr.Rdata)))
		p = append(p, rr.Rdata...)
	}
	binary.BigEndian.PutUint32(p[0:], uint32(len(p)-8))
	binary.BigEndian.PutUint32(p[4:], crc32.Checksum(p[8:], journalCRC))
	return p, nil
}

// errTorn: an entry that ends early or fails its checksum.
var errTorn = errors.New("torn journal entry")

// decodeEntry reads the entry at the start of b and returns its change
// and length.
func decodeEntry(b []byte) (from, to uint32, del, add []zone.RR, n int, err error) {
	if len(b) < 8 {
		return 0, 0, nil, nil, 0, errTorn
	}
	size := int(binary.BigEndian.Uint32(b))
	if size < 16 || len(b)-8 < size || crc32.Checksum(b[8:8+size], journalCRC) != binary.BigEndian.Uint32(b[4:]) {
		return 0, 0, nil, nil, 0, errTorn
	}
	p := b[8 : 8+size]
	from, to = binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
	nd, na := int(binary.BigEndian.Uint32(p[8:])), int(binary.BigEndian.Uint32(p[12:]))
	p = p[16:]
	rrs := make([]zone.RR, 0, min(nd+na, len(p)/9))
	for range nd + na {
		if len(p) < 1 || len(p) < 1+int(p[0])+8 {
			return 0, 0, nil, nil, 0, errTorn
		}
		var rr zone.RR
		rr.Name, p = p[1:1+int(p[0])], p[1+int(p[0]):]
		rr.Type, rr.TTL = binary.BigEndian.Uint16(p), binary.BigEndian.Uint32(p[2:])
		rdlen := int(binary.BigEndian.Uint16(p[6:]))
		if len(p) < 8+rdlen {
			return 0, 0, nil, nil, 0, errTorn
		}
		rr.Rdata, p = p[8:8+rdlen], p[8+rdlen:]
		rrs = append(rrs, rr)
	}
	if len(p) != 0 {
		return 0, 0, nil, nil, 0, errTorn
	}
	return from, to, rrs[:nd], rrs[nd:], 8 + size, nil
}

// replayJournal applies the zone's journal, if it continues the zone file
// whose SHA-256 is base, to z, the zone file's version; it returns the
// version it reaches and the journal's length. A journal of another zone
// file is removed; a torn end is cut off. A change that does not apply is
// errCorrupt.
func (s *store) replayJournal(name, base string, z *zone.Zone) (*zone.Zone, int64, error) {
	path := s.journalPath(name)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return z, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("journal of %s: %w", name, err)
	}
	header := journalMagic + base + "\n"
	if base == "" || !bytes.HasPrefix(data, []byte(header)) {
		if err := os.Remove(path); err != nil {
			return nil, 0, fmt.Errorf("stale journal of %s: %w", name, err)
		}
		return z, 0, nil
	}
	off := len(header)
	for off < len(data) {
		from, to, del, add, n, err := decodeEntry(data[off:])
		if err != nil || from != z.Serial {
			break // torn by a crash, or not this version's
		}
		nz, err := z.Apply(del, add)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %s: change from serial %d to %d: %w", errCorrupt, path, from, to, err)
		}
		if nz.Serial != to {
			return nil, 0, fmt.Errorf("%w: %s: change from serial %d makes %d, not %d", errCorrupt, path, from, nz.Serial, to)
		}
		z, off = nz, off+n
	}
	if off < len(data) {
		if err := os.Truncate(path, int64(off)); err != nil {
			return nil, 0, fmt.Errorf("journal of %s: %w", name, err)
		}
	}
	return z, int64(off), nil
}

// removeJournal deletes the zone's journal (its zone file was rewritten).
func (s *store) removeJournal(name string) error {
	err := os.Remove(s.journalPath(name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal of %s: %w", name, err)
	}
	return nil
}
