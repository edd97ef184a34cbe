package apiclient

import (
	"context"
	"net/http"

	"github.com/anycastdns/anycastdns/internal/api"
)

// DNSSEC returns the signing of a zone.
func (c *Client) DNSSEC(ctx context.Context, zone string) (api.DNSSECStatus, error) {
	var st api.DNSSECStatus
	_, err := c.doJSON(ctx, request{method: http.MethodGet, path: api.DNSSECPath(zone)}, nil, &st)
	return st, err
}

// SetDNSSEC enables or disables the signing of a zone.
func (c *Client) SetDNSSEC(ctx context.Context, zone string, req api.PutDNSSEC) (api.DNSSECStatus, error) {
	var st api.DNSSECStatus
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: api.DNSSECPath(zone)}, req, &st)
	return st, err
}

// DSSeen tells the control plane that the parent publishes the DS of the
// key with tag of a zone's rollover.
func (c *Client) DSSeen(ctx context.Context, zone string, tag uint16) (api.DNSSECStatus, error) {
	var st api.DNSSECStatus
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: api.DSSeenPath(zone)}, api.DSSeenRequest{Tag: tag}, &st)
	return st, err
}
