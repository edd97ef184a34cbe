package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Backup and restore of the whole store (issue #17):
//
//	GET  /v1/backup    the backup file: every zone, serial policy, signing policy and sealed key
//	POST /v1/restore   load a backup file into a control plane that holds no zone

// Paths and media type of backup and restore.
const (
	PathBackup  = "/v1/backup"
	PathRestore = "/v1/restore"
	// MediaBackup is the backup file: JSON values one a line.
	MediaBackup = "application/x-ndjson"
)

// BackupBackend is the part of a Backend that backs up and restores the
// whole store. A Backend without it answers the endpoints with 404.
type BackupBackend interface {
	// Backup writes the backup file of one consistent state of the store.
	Backup(ctx context.Context, w io.Writer) (BackupStats, error)
	// Restore loads a backup file into a store that holds no zone
	// (ErrConflict otherwise); a bad file is ErrInvalid.
	Restore(ctx context.Context, r io.Reader) (BackupStats, error)
}

// BackupStats counts what a backup holds: the answer of POST /v1/restore.
type BackupStats struct {
	Zones  int `json:"zones"`
	RRsets int `json:"rrsets"`
	Signed int `json:"signed"` // zones the control plane signs
	Keys   int `json:"keys"`   // their signing keys, sealed
}

func (h *handler) backupBackend() (BackupBackend, error) {
	bb, ok := h.b.(BackupBackend)
	if !ok {
		return nil, Mark(fmt.Errorf("this control plane has no backup"), ErrNotFound)
	}
	return bb, nil
}

// startWriter sends the headers of the backup before its first byte, so
// that an error before any byte is still an error answer; after it, the
// answer lacks the file's trailer and a restore refuses it.
type startWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", MediaBackup)
		s.w.Header().Set("Content-Disposition", `attachment; filename="anycastdns-`+time.Now().UTC().Format("20060102T150405Z")+`.backup"`)
		s.w.Header().Set("Cache-Control", "no-store")
		s.w.Header().Set("X-Content-Type-Options", "nosniff")
		s.w.WriteHeader(http.StatusOK)
	}
	return s.w.Write(p)
}

func (h *handler) backup(w http.ResponseWriter, r *http.Request) error {
	bb, err := h.backupBackend()
	if err != nil {
		return err
	}
	sw := &startWriter{w: w}
	st, err := bb.Backup(r.Context(), sw)
	if err != nil {
		if !sw.started {
			return err
		}
		// The status is sent: the truncated file is refused by restore.
		h.log.Error("backup failed while being sent", "err", err)
		return nil
	}
	h.log.Info("backup sent", "zones", st.Zones, "rrsets", st.RRsets, "signed", st.Signed, "keys", st.Keys, "remote_addr", r.RemoteAddr)
	return nil
}

func (h *handler) restore(w http.ResponseWriter, r *http.Request) error {
	bb, err := h.backupBackend()
	if err != nil {
		return err
	}
	if _, err := requireMedia(r, MediaBackup, MediaJSON); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	st, err := bb.Restore(r.Context(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
