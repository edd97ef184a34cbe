package xfrout

import (
	"context"

	"github.com/miekg/dns"
)

// maxUDPUpdates bounds the UPDATEs received over UDP that are applied at
// once; more are answered SERVFAIL (the client retries, as after a loss).
const maxUDPUpdates = 16

// update answers a DNS UPDATE (RFC 2136) whose TSIG verified: from a
// source outside UpdateFrom REFUSED, else the rcode of Config.Update,
// signed with the request's key. Over TCP it is applied on the
// connection's goroutine; over UDP on one of its own, so that the
// socket's reader goes on answering while the write is committed.
func (s *Server) update(ctx context.Context, r *request, pol *policy) error {
	if !pol.mayUpdate(r.src.Addr()) {
		s.met.result("update", resultRefused)
		s.log.Debug("update from a source outside update_from refused", "src", r.src, "zone", r.qname, "key", r.key)
		return s.reply(r, dns.RcodeRefused)
	}
	apply := func() error {
		rcode := pol.update(ctx, &r.msg, r.key, r.src)
		s.met.result("update", updateResult(rcode))
		return s.reply(r, rcode)
	}
	if r.tcp {
		return apply()
	}
	select {
	case s.updates <- struct{}{}:
	default:
		s.met.result("update", resultFailed)
		s.log.Warn("too many updates over UDP in progress; answered SERVFAIL", "src", r.src, "zone", r.qname, "in_progress", maxUDPUpdates)
		return s.reply(r, dns.RcodeServerFailure)
	}
	s.updating.Go(func() {
		defer func() { <-s.updates }()
		if err := apply(); err != nil {
			s.log.Debug("sending the answer to an update", "src", r.src, "err", err)
		}
	})
	return nil
}

// updateResult is the "result" label of an UPDATE's rcode.
func updateResult(rcode int) string {
	switch rcode {
	case dns.RcodeSuccess:
		return resultOK
	case dns.RcodeRefused:
		return resultRefused
	case dns.RcodeNotAuth:
		return resultNotAuth
	case dns.RcodeFormatError:
		return resultFormErr
	case dns.RcodeServerFailure:
		return resultFailed
	}
	return "prereq" // YXDOMAIN, NXDOMAIN, YXRRSET, NXRRSET, NOTZONE
}
