package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/anycastdns/anycastdns/internal/fleet"
)

// Fleet is the control plane's registry of its nodes (fleet.Registry).
type Fleet interface {
	// View lists the members; with zone set, each member's serial of it.
	View(ctx context.Context, zone string) (fleet.View, error)
	Revoke(node string) error
	Unrevoke(node string) error
	Forget(node string) error
}

// PathFleet lists the members of the fleet.
const PathFleet = "/v1/fleet"

// FleetMemberPath is the path of one member.
func FleetMemberPath(node string) string { return PathFleet + "/" + PathSegment(node) }

// FleetRevokePath is the path of a member's revocation.
func FleetRevokePath(node string) string { return FleetMemberPath(node) + "/revoke" }

// errNoFleet answers the fleet's endpoints on a control plane without a
// stream listener.
var errNoFleet = Mark(errors.New("this control plane has no fleet: it needs a stream listener (stream.listen) for nodes to join"), ErrNotFound)

func (h *handler) fleetView(w http.ResponseWriter, r *http.Request) error {
	if h.fleet == nil {
		return errNoFleet
	}
	zone := r.URL.Query().Get("zone")
	if zone != "" {
		z, err := CanonicalZone(zone)
		if err != nil {
			return Mark(err, ErrInvalid)
		}
		zone = z
	}
	v, err := h.fleet.View(r.Context(), zone)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (h *handler) fleetRevoke(w http.ResponseWriter, r *http.Request) error {
	return h.fleetAction(w, r, "revoke", func(f Fleet, node string) error { return f.Revoke(node) })
}

func (h *handler) fleetUnrevoke(w http.ResponseWriter, r *http.Request) error {
	return h.fleetAction(w, r, "unrevoke", func(f Fleet, node string) error { return f.Unrevoke(node) })
}

func (h *handler) fleetForget(w http.ResponseWriter, r *http.Request) error {
	return h.fleetAction(w, r, "forget", func(f Fleet, node string) error { return f.Forget(node) })
}

// fleetAction runs one operator action on a member and answers with the
// fleet as it is afterwards.
func (h *handler) fleetAction(w http.ResponseWriter, r *http.Request, what string, do func(Fleet, string) error) error {
	if h.fleet == nil {
		return errNoFleet
	}
	node := r.PathValue("node")
	if node == "" {
		return badRequest("%s: no node name", what)
	}
	if err := do(h.fleet, node); err != nil {
		switch {
		case errors.Is(err, fleet.ErrNotFound):
			return Mark(err, ErrNotFound)
		case errors.Is(err, fleet.ErrConnected):
			return Mark(err, ErrConflict)
		}
		return err
	}
	v, err := h.fleet.View(r.Context(), "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}
