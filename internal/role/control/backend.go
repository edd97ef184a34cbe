package control

import (
	"context"
	"errors"
	"io"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// NewBackend serves a store through the API: it converts the store's types
// and classifies its errors for the API. (The API does not import the
// store, so that its client, and the CLI, stay free of the database.)
func NewBackend(s *store.Store) api.Backend { return backend{s: s} }

type backend struct {
	s *store.Store
	// wake, when set, wakes the signing task after a signing change.
	wake signingWake
}

func apiInfo(i store.ZoneInfo) api.ZoneInfo {
	return api.ZoneInfo{Name: i.Name, Serial: i.Serial, Records: i.Records, Updated: i.Updated, SerialPolicy: i.SerialPolicy}
}

// classify marks the store's errors with the API's classes.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return api.Mark(err, api.ErrNotFound)
	case errors.Is(err, store.ErrExists):
		return api.Mark(err, api.ErrExists)
	case errors.Is(err, store.ErrSigned), errors.Is(err, store.ErrNotEmpty):
		return api.Mark(err, api.ErrConflict)
	case errors.Is(err, store.ErrInvalid):
		return api.Mark(err, api.ErrInvalid)
	case errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrCommitUnknown):
		return api.Mark(err, api.ErrUnavailable)
	}
	return err
}

func (b backend) ListZones(ctx context.Context) ([]api.ZoneInfo, error) {
	infos, err := b.s.ListZones(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]api.ZoneInfo, len(infos))
	for i, info := range infos {
		out[i] = apiInfo(info)
	}
	return out, nil
}

func (b backend) Zone(ctx context.Context, name string) (api.ZoneInfo, *zone.Zone, error) {
	info, z, err := b.s.Get(ctx, name)
	return apiInfo(info), z, classify(err)
}

func (b backend) CreateZone(ctx context.Context, name string, rrs []dns.RR, policy string) (api.ZoneInfo, error) {
	info, err := b.s.CreateZone(ctx, name, rrs, store.SerialPolicy(policy))
	return apiInfo(info), classify(err)
}

func (b backend) CreateZoneText(ctx context.Context, name string, text io.Reader, policy string) (api.ZoneInfo, error) {
	info, err := b.s.CreateZoneFromText(ctx, name, text, store.SerialPolicy(policy))
	return apiInfo(info), classify(err)
}

func (b backend) DeleteZone(ctx context.Context, name string) error {
	return classify(b.s.DeleteZone(ctx, name))
}

func (b backend) ImportZone(ctx context.Context, name string, text io.Reader) (api.ZoneInfo, error) {
	info, err := b.s.ImportZone(ctx, name, text)
	return apiInfo(info), classify(err)
}

func (b backend) RRset(ctx context.Context, zoneName, name string, t uint16) ([]dns.RR, error) {
	rrs, err := b.s.RRset(ctx, zoneName, name, t)
	return rrs, classify(err)
}

func (b backend) UpdateRRset(ctx context.Context, zoneName, name string, t uint16, fn func([]dns.RR) ([]dns.RR, error)) (uint32, []dns.RR, error) {
	serial, rrs, err := b.s.UpdateRRset(ctx, zoneName, name, t, fn)
	return serial, rrs, classify(err)
}

// Backup writes the store's backup file (store.Backup).
func (b backend) Backup(ctx context.Context, w io.Writer) (api.BackupStats, error) {
	st, err := b.s.Backup(ctx, w)
	return api.BackupStats(st), classify(err)
}

// Restore loads a backup file into the empty store (store.Restore).
func (b backend) Restore(ctx context.Context, r io.Reader) (api.BackupStats, error) {
	st, err := b.s.Restore(ctx, r)
	return api.BackupStats(st), classify(err)
}
