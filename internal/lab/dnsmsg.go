package lab

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Transports a probe can use.
const (
	UDP4 = "udp4"
	UDP6 = "udp6"
	TCP4 = "tcp4"
	TCP6 = "tcp6"
)

// Answer is the fate of one probe query.
type Answer struct {
	Seq  int
	Sent time.Time
	// Recv is when the answer arrived; zero when none arrived within the
	// timeout (the query is lost).
	Recv time.Time
	// PoP is the node that answered, from the NSID option.
	PoP string
	// Err says why the query is lost: "timeout", "late", a bad answer.
	Err string
}

// OK reports whether the query got a good answer in time.
func (a Answer) OK() bool { return !a.Recv.IsZero() && a.Err == "" }

// RTT is the query time of an answered query.
func (a Answer) RTT() time.Duration {
	if a.Recv.IsZero() {
		return 0
	}
	return a.Recv.Sub(a.Sent)
}

// probeQuery is the wire form of the probe query, ID 0: ProbeName A with
// EDNS (1232 bytes) and an empty NSID option, so that every answer says
// which PoP sent it.
func probeQuery(qtype uint16) ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(ProbeName, qtype)
	m.Id = 0
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	return m.Pack()
}

var errNoNSID = errors.New("answer without NSID")

// parseAnswer checks an answer to a probe query and returns its ID and the
// NSID of the node that sent it. A good answer is authoritative NOERROR
// with at least one record, for the probe name.
func parseAnswer(b []byte) (id uint16, pop string, err error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		if len(b) >= 2 {
			id = uint16(b[0])<<8 | uint16(b[1])
		}
		return id, "", fmt.Errorf("malformed answer: %w", err)
	}
	id = m.Id
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				raw, herr := hex.DecodeString(n.Nsid)
				if herr == nil {
					pop = string(raw)
				}
			}
		}
	}
	switch {
	case !m.Response:
		return id, pop, errors.New("not a response")
	case m.Rcode != dns.RcodeSuccess:
		return id, pop, fmt.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
	case !m.Authoritative:
		return id, pop, errors.New("not authoritative")
	case len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, ProbeName):
		return id, pop, errors.New("answer to another question")
	case len(m.Answer) == 0:
		return id, pop, errors.New("empty answer")
	case pop == "":
		return id, pop, errNoNSID
	}
	return id, pop, nil
}
