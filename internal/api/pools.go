package api

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Pool is a steered RRset as the API shows it: the owner and type it
// answers for, and the pool (steer.Pool: ttl, policy, first_n,
// endpoints).
type Pool struct {
	Name string `json:"name"`
	Type string `json:"type"`
	steer.Pool
}

// PoolList is the answer to GET /v1/zones/{zone}/pools.
type PoolList struct {
	Pools []Pool `json:"pools"`
}

// PoolWrite is the answer to a PUT of a pool: the zone's new serial and
// the pool as stored.
type PoolWrite struct {
	Serial uint32 `json:"serial"`
	Pool   Pool   `json:"pool"`
}

// PoolsPath is the path of a zone's pools; PoolPath of one pool.
func PoolsPath(zone string) string { return ZonePath(zone) + "/pools" }

// PoolPath is the path of the pool for name and type in zone.
func PoolPath(zone, name, typ string) string {
	return PoolsPath(zone) + "/" + PathSegment(name) + "/" + PathSegment(typ)
}

// poolParams are the zone, owner and type of a pool path: A or AAAA.
func poolParams(r *http.Request) (zname, owner string, t uint16, err error) {
	if zname, owner, t, err = rrsetParams(r); err != nil {
		return "", "", 0, err
	}
	if t != dns.TypeA && t != dns.TypeAAAA {
		return "", "", 0, badRequest("type %s: a pool steers A or AAAA", typeString(t))
	}
	return zname, owner, t, nil
}

// poolsAt reads the pools of the TypePool records in rrs.
func poolsAt(owner string, rrs []dns.RR) ([]Pool, error) {
	var out []Pool
	for _, rr := range rrs {
		rd, err := poolRdata(rr)
		if err != nil {
			return nil, fmt.Errorf("pool at %s: %w", owner, err)
		}
		t, p, err := steer.Decode(rd)
		if err != nil {
			return nil, fmt.Errorf("pool at %s: %w", owner, err)
		}
		out = append(out, Pool{Name: owner, Type: typeString(t), Pool: p})
	}
	slices.SortFunc(out, func(a, b Pool) int { return strings.Compare(a.Type, b.Type) })
	return out, nil
}

// poolRdata is the rdata of a TypePool record.
func poolRdata(rr dns.RR) ([]byte, error) {
	u, ok := rr.(*dns.RFC3597)
	if !ok {
		return nil, fmt.Errorf("record of type %T", rr)
	}
	rd, err := hex.DecodeString(u.Rdata)
	if err != nil {
		return nil, fmt.Errorf("rdata: %w", err)
	}
	return rd, nil
}

func (h *handler) listPools(w http.ResponseWriter, r *http.Request) error {
	zname, err := zoneParam(r)
	if err != nil {
		return err
	}
	_, z, err := h.b.Zone(r.Context(), zname)
	if err != nil {
		return err
	}
	out := []Pool{}
	z.Nodes(func(n *zone.Node) {
		if err != nil {
			return
		}
		s := n.Get(steer.TypePool)
		if s == nil {
			return
		}
		owner := zone.NameString(n.Name)
		data := s.WithoutSigs()
		rrs, e := data.RRs(owner)
		if e != nil {
			err = e
			return
		}
		ps, e := poolsAt(owner, rrs)
		if e != nil {
			err = e
			return
		}
		out = append(out, ps...)
	})
	if err != nil {
		return err
	}
	slices.SortFunc(out, func(a, b Pool) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Type, b.Type)
	})
	writeJSON(w, http.StatusOK, PoolList{Pools: out})
	return nil
}

func (h *handler) getPool(w http.ResponseWriter, r *http.Request) error {
	zname, owner, t, err := poolParams(r)
	if err != nil {
		return err
	}
	rrs, err := h.b.RRset(r.Context(), zname, owner, steer.TypePool)
	if err != nil {
		return err
	}
	ps, err := poolsAt(owner, rrs)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Type == typeString(t) {
			writeJSON(w, http.StatusOK, p)
			return nil
		}
	}
	return Mark(fmt.Errorf("zone %s: no pool for %s %s", zname, owner, typeString(t)), ErrNotFound)
}

// refuseSigned refuses pools in a zone signed elsewhere (pre-signed text):
// nothing would sign their answers, so they would not validate. A zone the
// control plane signs takes them: their answers are signed with the write.
func (h *handler) refuseSigned(r *http.Request, zname string) error {
	_, z, err := h.b.Zone(r.Context(), zname)
	if err != nil {
		return err
	}
	if !z.Signed {
		return nil
	}
	if sb, ok := h.b.(SigningBackend); ok {
		st, err := sb.Signing(r.Context(), zname)
		if err != nil {
			return err
		}
		if st.Enabled {
			return nil
		}
	}
	return Mark(fmt.Errorf("zone %s is DNSSEC-signed elsewhere (imported signed): a steered answer would not validate; "+
		"import it unsigned and let the control plane sign it (anycastctl dnssec enable) to use pools", zname), ErrConflict)
}

func (h *handler) putPool(w http.ResponseWriter, r *http.Request) error {
	zname, owner, t, err := poolParams(r)
	if err != nil {
		return err
	}
	var req Pool
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Name != "" {
		if n, err := ResolveName(zname, req.Name); err != nil || n != owner {
			return badRequest("name %q: not the name of the path, %s", req.Name, owner)
		}
	}
	if req.Type != "" && !strings.EqualFold(req.Type, typeString(t)) {
		return badRequest("type %q: not the type of the path, %s", req.Type, typeString(t))
	}
	rd, err := steer.Encode(t, req.Pool)
	if err != nil {
		return Mark(err, ErrInvalid)
	}
	if err := h.refuseSigned(r, zname); err != nil {
		return err
	}
	rr := &dns.RFC3597{Hdr: dns.RR_Header{Name: owner, Rrtype: steer.TypePool, Class: dns.ClassINET, Ttl: req.TTL}, Rdata: hex.EncodeToString(rd)}
	serial, stored, err := h.b.UpdateRRset(r.Context(), zname, owner, steer.TypePool, func(cur []dns.RR) ([]dns.RR, error) {
		next := []dns.RR{rr}
		for _, c := range cur {
			crd, err := poolRdata(c)
			if err != nil || steer.RdataType(crd) == t {
				continue // replaced (or unreadable: replaced too)
			}
			c = dns.Copy(c)
			c.Header().Ttl = rr.Hdr.Ttl // one TTL per RRset (RFC 2181 §5.2)
			next = append(next, c)
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	requestInfo(r).serial = serial
	ps, err := poolsAt(owner, stored)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Type == typeString(t) {
			writeJSON(w, http.StatusOK, PoolWrite{Serial: serial, Pool: p})
			return nil
		}
	}
	return fmt.Errorf("pool %s %s not stored", owner, typeString(t))
}

func (h *handler) deletePool(w http.ResponseWriter, r *http.Request) error {
	zname, owner, t, err := poolParams(r)
	if err != nil {
		return err
	}
	found := false
	serial, _, err := h.b.UpdateRRset(r.Context(), zname, owner, steer.TypePool, func(cur []dns.RR) ([]dns.RR, error) {
		var next []dns.RR
		for _, c := range cur {
			if crd, err := poolRdata(c); err == nil && steer.RdataType(crd) == t {
				found = true
				continue
			}
			next = append(next, c)
		}
		if !found {
			return nil, Mark(fmt.Errorf("zone %s: no pool for %s %s", zname, owner, typeString(t)), ErrNotFound)
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	requestInfo(r).serial = serial
	writeJSON(w, http.StatusOK, WriteResult{Serial: serial})
	return nil
}
