package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// Fleet is the control plane's registry of its nodes (fleet.Registry).
type Fleet interface {
	// View lists the members; with zone set, each member's serial of it.
	View(ctx context.Context, zone string) (fleet.View, error)
	Revoke(node string) error
	Unrevoke(node string) error
	Forget(node string) error
	// Observe records a monitor's report (fleet.ErrInvalidReport: 400).
	Observe(rep fleet.Report, remote string) error
	// Pin and Unpin set and lift an operator's level of a PoP
	// (fleet.ErrNoLevels: 409, fleet.ErrInvalid: 400, fleet.ErrNotFound:
	// 404).
	Pin(pop string, l level.Level, reason string) error
	Unpin(pop string) error
}

// PinRequest is the body of PUT /v1/fleet/pops/{pop}/pin.
type PinRequest struct {
	Level  string `json:"level"`  // normal, shed-1, shed-2, shed-3, withdrawn
	Reason string `json:"reason"` // shown with the level; optional
}

// FleetPinPath is the path of a PoP's pin.
func FleetPinPath(pop string) string { return PathFleet + "/pops/" + PathSegment(pop) + "/pin" }

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

// fleetObserve records a monitor's report: 204, or 400 naming the field
// that is wrong. Fields it does not know are ignored (a newer monitor).
func (h *handler) fleetObserve(w http.ResponseWriter, r *http.Request) error {
	if h.fleet == nil {
		return errNoFleet
	}
	if _, err := requireMedia(r, MediaJSON); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var rep fleet.Report
	if err := decodeJSONWith(body, &rep, false); err != nil {
		return err
	}
	if err := h.fleet.Observe(rep, r.RemoteAddr); err != nil {
		if errors.Is(err, fleet.ErrInvalidReport) {
			return Mark(err, ErrInvalid)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) fleetPin(w http.ResponseWriter, r *http.Request) error {
	var req PinRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	l, err := level.Parse(req.Level)
	if err != nil {
		return badRequest("level: %v", err)
	}
	return h.popAction(w, r, func(f Fleet, pop string) error { return f.Pin(pop, l, req.Reason) })
}

func (h *handler) fleetUnpin(w http.ResponseWriter, r *http.Request) error {
	return h.popAction(w, r, func(f Fleet, pop string) error { return f.Unpin(pop) })
}

// popAction runs an operator action on a PoP and answers with the fleet
// as it is afterwards.
func (h *handler) popAction(w http.ResponseWriter, r *http.Request, do func(Fleet, string) error) error {
	if h.fleet == nil {
		return errNoFleet
	}
	if err := do(h.fleet, r.PathValue("pop")); err != nil {
		switch {
		case errors.Is(err, fleet.ErrInvalid):
			return Mark(err, ErrInvalid)
		case errors.Is(err, fleet.ErrNoLevels):
			return Mark(err, ErrConflict)
		case errors.Is(err, fleet.ErrNotFound):
			return Mark(err, ErrNotFound)
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
