package apiclient

import (
	"context"
	"net/url"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/fleet"
)

// Fleet returns the members of the fleet; with zone set, each member's
// serial of that zone.
func (c *Client) Fleet(ctx context.Context, zone string) (fleet.View, error) {
	var v fleet.View
	r := request{method: "GET", path: api.PathFleet}
	if zone != "" {
		r.query = url.Values{"zone": {zone}}
	}
	_, err := c.doJSON(ctx, r, nil, &v)
	return v, err
}

// Revoke revokes a member and returns the fleet afterwards.
func (c *Client) Revoke(ctx context.Context, node string) (fleet.View, error) {
	return c.fleetAction(ctx, "POST", api.FleetRevokePath(node))
}

// Unrevoke lifts a member's revocation.
func (c *Client) Unrevoke(ctx context.Context, node string) (fleet.View, error) {
	return c.fleetAction(ctx, "DELETE", api.FleetRevokePath(node))
}

// Forget removes a member that is not connected.
func (c *Client) Forget(ctx context.Context, node string) (fleet.View, error) {
	return c.fleetAction(ctx, "DELETE", api.FleetMemberPath(node))
}

func (c *Client) fleetAction(ctx context.Context, method, path string) (fleet.View, error) {
	var v fleet.View
	_, err := c.doJSON(ctx, request{method: method, path: path}, nil, &v)
	return v, err
}

// Pin pins a PoP's level on the control plane and returns the fleet
// afterwards.
func (c *Client) Pin(ctx context.Context, pop, level, reason string) (fleet.View, error) {
	var v fleet.View
	_, err := c.doJSON(ctx, request{method: "PUT", path: api.FleetPinPath(pop)}, api.PinRequest{Level: level, Reason: reason}, &v)
	return v, err
}

// Unpin lifts a PoP's pin.
func (c *Client) Unpin(ctx context.Context, pop string) (fleet.View, error) {
	return c.fleetAction(ctx, "DELETE", api.FleetPinPath(pop))
}
