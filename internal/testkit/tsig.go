package testkit

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // hmac-sha1 is still a TSIG algorithm (RFC 8945)
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"github.com/miekg/dns"
)

// VerifyTSIG checks the MAC of the TSIG record of a single answer by hand
// (RFC 8945 §4.3.3: the request's MAC, the message without its TSIG
// record, the TSIG variables), with the base64 secret, whatever the
// RCODE: miekg/dns refuses to verify NOTAUTH answers, such as BADTIME's.
// It is the tests' oracle, independent of the code under test.
func VerifyTSIG(resp []byte, secret, requestMAC string) error {
	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		return err
	}
	t := m.IsTsig()
	if t == nil {
		return errors.New("no TSIG record")
	}
	var h func() hash.Hash
	switch dns.CanonicalName(t.Algorithm) {
	case dns.HmacSHA1:
		h = sha1.New
	case dns.HmacSHA224:
		h = sha256.New224
	case dns.HmacSHA256:
		h = sha256.New
	case dns.HmacSHA384:
		h = sha512.New384
	case dns.HmacSHA512:
		h = sha512.New
	default:
		return fmt.Errorf("algorithm %s unknown to the test", t.Algorithm)
	}
	// The message without its TSIG record (the last one), ARCOUNT one
	// less, with the original ID.
	body := append([]byte(nil), resp[:len(resp)-dns.Len(t)]...)
	binary.BigEndian.PutUint16(body[0:], t.OrigId)
	binary.BigEndian.PutUint16(body[10:], binary.BigEndian.Uint16(body[10:])-1)
	reqMAC, err := hex.DecodeString(requestMAC)
	if err != nil {
		return err
	}
	key, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return err
	}
	var buf []byte
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(reqMAC)))
	buf = append(buf, reqMAC...)
	buf = append(buf, body...)
	for _, name := range []string{t.Hdr.Name, t.Algorithm} {
		w := make([]byte, 256)
		n, err := dns.PackDomainName(dns.CanonicalName(name), w, 0, nil, false)
		if err != nil {
			return err
		}
		buf = append(buf, w[:n]...)
		if name == t.Hdr.Name {
			buf = binary.BigEndian.AppendUint16(buf, dns.ClassANY)
			buf = binary.BigEndian.AppendUint32(buf, 0) // TTL
		}
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(t.TimeSigned>>32))
	buf = binary.BigEndian.AppendUint32(buf, uint32(t.TimeSigned))
	buf = binary.BigEndian.AppendUint16(buf, t.Fudge)
	buf = binary.BigEndian.AppendUint16(buf, t.Error)
	other, err := hex.DecodeString(t.OtherData)
	if err != nil {
		return err
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(other)))
	buf = append(buf, other...)
	mac := hmac.New(h, key)
	mac.Write(buf)
	got, err := hex.DecodeString(t.MAC)
	if err != nil {
		return err
	}
	if !hmac.Equal(mac.Sum(nil), got) {
		return errors.New("MAC does not verify")
	}
	return nil
}
