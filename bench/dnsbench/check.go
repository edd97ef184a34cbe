package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// Before a server is measured, a sample of each kind of query is sent to it
// and the answers are checked against what RFC 1034 requires, so that a
// fast wrong answer (REFUSED, SERVFAIL, a missing referral) shows up
// instead of flattering the figures.

// checkAnswer returns nil when m is a correct answer to q.
func checkAnswer(q query, m *benchkit.Message) error {
	want, err := benchkit.PackName(nil, q.Name)
	if err != nil {
		return err
	}
	switch {
	case !m.Response:
		return errors.New("QR bit clear")
	case m.TC:
		return errors.New("truncated")
	case !bytes.Equal(m.QNameWire, want) || m.QType != q.Type:
		return fmt.Errorf("question not echoed as sent (letter case must be kept)")
	}
	qname := strings.ToLower(q.Name)
	wantRcode := benchkit.RCodeNoError
	if q.Kind == kindNXDomain {
		wantRcode = benchkit.RCodeNXDomain
	}
	if m.RCode != wantRcode {
		return fmt.Errorf("rcode %d, want %d", m.RCode, wantRcode)
	}
	if q.Kind == kindReferral {
		if m.AA {
			return errors.New("AA set on a referral")
		}
		if len(m.Answer) != 0 {
			return fmt.Errorf("referral with %d answer records", len(m.Answer))
		}
		if benchkit.CountType(m.Authority, benchkit.TypeNS) == 0 {
			return errors.New("referral without NS records")
		}
		if benchkit.CountType(m.Extra, benchkit.TypeA)+benchkit.CountType(m.Extra, benchkit.TypeAAAA) == 0 {
			return errors.New("referral without glue")
		}
		return nil
	}
	if !m.AA {
		return errors.New("AA clear")
	}
	switch q.Kind {
	case kindNXDomain, kindNoData:
		if len(m.Answer) != 0 {
			return fmt.Errorf("%d answer records", len(m.Answer))
		}
		if benchkit.CountType(m.Authority, benchkit.TypeSOA) != 1 {
			return errors.New("no SOA in the authority section")
		}
	case kindCNAME:
		if len(m.Answer) == 0 || m.Answer[0].Type != benchkit.TypeCNAME || m.Answer[0].Name != qname {
			return errors.New("answer does not start with the CNAME of the name")
		}
		target, err := m.RDataName(m.Answer[0], 0)
		if err != nil {
			return fmt.Errorf("cname target: %w", err)
		}
		if strings.HasSuffix(target, "."+strings.ToLower(originOf(q.Name))) {
			// In-zone target: the server must follow it. (A target without
			// the asked type gives the CNAME alone.)
			for _, r := range m.Answer[1:] {
				if r.Name == target && r.Type == q.Type {
					return nil
				}
			}
			if q.Type == benchkit.TypeA {
				return fmt.Errorf("in-zone CNAME target %s not followed", target)
			}
		}
	case kindPositive, kindWildcard:
		n := 0
		for _, r := range m.Answer {
			if r.Type == q.Type && r.Name == qname {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("no %s record owned by the query name", benchkit.TypeString(q.Type))
		}
		if q.WantA.IsValid() {
			a, ok := netip.AddrFromSlice(m.Answer[0].RData)
			if !ok || a != q.WantA {
				return fmt.Errorf("address %v, want %v", m.Answer[0].RData, q.WantA)
			}
		}
	}
	return nil
}

// originOf returns the last two labels of name, the benchmark's origin.
func originOf(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	if len(labels) < 2 {
		return name
	}
	return strings.Join(labels[len(labels)-2:], ".") + "."
}

// checkResult counts the checked answers of one server.
type checkResult struct {
	Checked  int      `json:"checked"`
	Wrong    int      `json:"wrong"`
	Examples []string `json:"examples,omitempty"`
}

// exchanger sends one query and returns the answer with the same ID.
type exchanger func(msg []byte, id uint16) (*benchkit.Message, error)

// checkServer sends the sample queries of every kind to addr, over UDP and
// over one TCP connection.
func checkServer(addr netip.AddrPort, zd *zoneData) (checkResult, error) {
	uconn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return checkResult{}, fmt.Errorf("check answers: %w", err)
	}
	defer func() { _ = uconn.Close() }()
	tconn, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
	if err != nil {
		return checkResult{}, fmt.Errorf("check answers over tcp: %w", err)
	}
	defer func() { _ = tconn.Close() }()
	buf := make([]byte, 65535)
	udp := func(msg []byte, id uint16) (*benchkit.Message, error) {
		if _, err := uconn.Write(msg); err != nil {
			return nil, err
		}
		_ = uconn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := uconn.Read(buf)
			if err != nil {
				return nil, err
			}
			m, err := benchkit.ParseMessage(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("parse: %w", err)
			}
			if m.ID == id {
				return m, nil
			}
		}
	}
	tcp := func(msg []byte, id uint16) (*benchkit.Message, error) {
		_ = tconn.SetDeadline(time.Now().Add(2 * time.Second))
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
		if _, err := tconn.Write(append(framed, msg...)); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(tconn, l[:]); err != nil {
			return nil, err
		}
		b := buf[:binary.BigEndian.Uint16(l[:])]
		if _, err := io.ReadFull(tconn, b); err != nil {
			return nil, err
		}
		m, err := benchkit.ParseMessage(b)
		if err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
		if m.ID != id {
			return nil, fmt.Errorf("answer id %d, want %d", m.ID, id)
		}
		return m, nil
	}
	var res checkResult
	id := uint16(0x4000)
	for _, tr := range []struct {
		name string
		ex   exchanger
	}{{"udp", udp}, {"tcp", tcp}} {
		for k := range numKinds {
			for _, q := range zd.Samples[k] {
				id++
				res.Checked++
				msg, err := benchkit.BuildQuery(id, q.Name, q.Type)
				if err != nil {
					return res, err
				}
				m, err := tr.ex(msg, id)
				if err == nil {
					err = checkAnswer(q, m)
				}
				if err != nil {
					res.Wrong++
					if len(res.Examples) < 5 {
						res.Examples = append(res.Examples, fmt.Sprintf("%s %s %s %s: %v", tr.name, k, q.Name, benchkit.TypeString(q.Type), err))
					}
				}
			}
		}
	}
	return res, nil
}
