package apiclient

import (
	"context"
	"io"
	"net/http"

	"github.com/anycastdns/anycastdns/internal/api"
)

// Backup writes the control plane's backup file (GET /v1/backup) to w.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	_, body, err := c.do(ctx, request{method: http.MethodGet, path: api.PathBackup})
	if err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

// Restore loads a backup file into a control plane that holds no zone
// (POST /v1/restore).
func (c *Client) Restore(ctx context.Context, file io.Reader) (api.BackupStats, error) {
	var st api.BackupStats
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: api.PathRestore, contentType: api.MediaBackup, body: file}, nil, &st)
	return st, err
}
