package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/anycastdns/anycastdns/internal/store"
)

// runControlMigrate is "anycastd control migrate -from sqlite:PATH -to
// postgres:DSN": the zone database of a control plane, moved from SQLite to
// PostgreSQL (issue 17). The control plane must be stopped.
func runControlMigrate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("control migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the database to copy: sqlite:`PATH` (data_dir/zones.db)")
	to := fs.String("to", "", "the empty database to copy it to: postgres:`DSN` (as store.postgres.dsn)")
	if err := fs.Parse(args); err != nil {
		return usageError(stderr, err)
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fmt.Errorf("control migrate: unexpected argument %q", fs.Arg(0)))
	}
	path, ok := strings.CutPrefix(*from, "sqlite:")
	if !ok || path == "" {
		return usageError(stderr, fmt.Errorf("control migrate: -from must be sqlite:PATH, got %q", *from))
	}
	dsn, ok := strings.CutPrefix(*to, "postgres:")
	if !ok || dsn == "" {
		return usageError(stderr, fmt.Errorf("control migrate: -to must be postgres:DSN, got %q", *to))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Migrate(ctx, path, dsn, logger)
	if err != nil {
		return fmt.Errorf("control migrate: %w", err)
	}
	_, err = fmt.Fprintf(stdout, "migrated %d zones (%d RRsets, %d change log entries, %d signed with %d keys) from %s; set store.postgres.dsn in control.yaml to use it\n",
		st.Zones, st.RRsets, st.Changes, st.Signed, st.Keys, path)
	return err
}

// usageError is a command-line mistake, printed (the flag package has
// printed its own): exit status 2.
func usageError(stderr io.Writer, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if !strings.HasPrefix(err.Error(), "flag provided but not defined") && !strings.Contains(err.Error(), "flag needs an argument") {
		_, _ = fmt.Fprintln(stderr, "anycastd:", err)
	}
	return &exitError{code: 2}
}
