package xfrout

import (
	"context"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// policy is what Reconfigure replaces as one: the TSIG keys and the
// transfer ACL. A request reads it once, so it is checked against one
// version from start to end.
type policy struct {
	ring  *tsig.Keyring
	allow []ACL
	nodes map[string]bool // canonical names of the node keys
	// update applies UPDATEs (nil: NOTIMP), from the sources in
	// updateFrom (empty: any).
	update     UpdateFunc
	updateFrom []netip.Prefix
}

// newPolicy is the policy of cfg's ACL and node keys.
func newPolicy(ring *tsig.Keyring, cfg Config) *policy {
	p := &policy{ring: ring, allow: append([]ACL(nil), cfg.AllowTransfer...), nodes: map[string]bool{},
		update: cfg.Update, updateFrom: append([]netip.Prefix(nil), cfg.UpdateFrom...)}
	for _, k := range cfg.NodeKeys {
		p.nodes[dns.CanonicalName(k)] = true
	}
	return p
}

// node reports whether a request signed with keyName ("" = unsigned)
// comes from one of our nodes.
func (p *policy) node(keyName string) bool { return keyName != "" && p.nodes[keyName] }

// mayUpdate reports whether addr may send UPDATE.
func (p *policy) mayUpdate(addr netip.Addr) bool {
	if p.update == nil {
		return false
	}
	if len(p.updateFrom) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, pr := range p.updateFrom {
		if pr.Contains(addr) {
			return true
		}
	}
	return false
}

// Reconfigure applies the TSIG keys, the transfer ACL, the update
// function and its sources and the NOTIFY targets of cfg while the server
// runs. It checks them first: on an error
// nothing changes. Requests that started keep the keys and ACL they
// started with. A NOTIFY target whose address and key are unchanged keeps
// its pending NOTIFYs; a removed one drops them; a new one is sent a
// NOTIFY of every zone, as every target is at start.
//
// The other fields of cfg (the listen addresses, the catalog, the limits
// and timers) are fixed at New and ignored here.
func (s *Server) Reconfigure(ctx context.Context, cfg Config) error {
	cfg.Listen, cfg.Catalog = s.cfg.Listen, s.cfg.Catalog
	cfg.defaults()
	ring, err := cfg.check()
	if err != nil {
		return err
	}
	s.reconfigure.Lock()
	defer s.reconfigure.Unlock()
	s.pol.Store(newPolicy(ring, cfg))
	added := s.notify.setTargets(cfg.Notify, ring)
	s.log.Info("transfer keys, ACL and notify targets reloaded", "keys", ring.Len(),
		"allow_transfer", len(cfg.AllowTransfer), "notify_targets", len(cfg.Notify), "new_targets", len(added))
	if len(added) == 0 {
		return nil
	}
	select {
	case <-s.ready:
	default:
		return nil // Run has not started: it notifies every target of every zone
	}
	if s.cat != nil {
		if z := s.cat.current(); z != nil {
			s.notify.enqueueTo(added, z.Origin, z.Serial)
		}
	}
	infos, err := s.src.ListZones(ctx)
	if err != nil {
		s.log.Warn("listing zones to notify the new targets", "err", err)
		return nil // the keys and ACL are in force; the new targets hear of the next change
	}
	for _, zi := range infos {
		if s.cat == nil || dns.CanonicalName(zi.Name) != s.cat.name {
			s.notify.enqueueTo(added, zi.Name, zi.Serial)
		}
	}
	return nil
}
