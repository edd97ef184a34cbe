package apiclient

import (
	"context"
	"net/http"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// Pools returns the pools of a zone.
func (c *Client) Pools(ctx context.Context, zone string) ([]api.Pool, error) {
	var l api.PoolList
	_, err := c.doJSON(ctx, request{method: http.MethodGet, path: api.PoolsPath(zone)}, nil, &l)
	return l.Pools, err
}

// Pool returns the pool for name and type (A or AAAA) in a zone.
func (c *Client) Pool(ctx context.Context, zone, name, typ string) (api.Pool, error) {
	var p api.Pool
	_, err := c.doJSON(ctx, request{method: http.MethodGet, path: api.PoolPath(zone, name, typ)}, nil, &p)
	return p, err
}

// SetPool defines (creates or replaces) the pool for name and type.
func (c *Client) SetPool(ctx context.Context, zone, name, typ string, p steer.Pool) (api.PoolWrite, error) {
	var res api.PoolWrite
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: api.PoolPath(zone, name, typ)}, p, &res)
	return res, err
}

// DeletePool deletes the pool for name and type.
func (c *Client) DeletePool(ctx context.Context, zone, name, typ string) (api.WriteResult, error) {
	var res api.WriteResult
	_, err := c.doJSON(ctx, request{method: http.MethodDelete, path: api.PoolPath(zone, name, typ)}, nil, &res)
	return res, err
}
