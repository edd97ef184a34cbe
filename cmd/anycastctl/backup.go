package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// backupCommand writes the control plane's backup file.
func backupCommand() *command {
	return &command{
		name: "backup", args: "-o FILE|-",
		summary: "write a backup of every zone, serial policy, signing policy and sealed key to a file",
		describe: "The backup is one consistent snapshot of the control plane's database (SQLite or\n" +
			"PostgreSQL), in one file of JSON lines. Signing keys stay sealed with the control\n" +
			"plane's signing.key_file: keep that file too, a restore needs it. Keys kept in a\n" +
			"PKCS#11 token (signing.pkcs11) are in it as references only: back the token up\n" +
			"with its own tools. The change logs are not kept. FILE is written beside its final name and renamed when whole.\n" +
			"\n" + apiHelp,
		run: runBackup,
	}
}

// restoreCommand loads a backup file into an empty control plane.
func restoreCommand() *command {
	return &command{
		name: "restore", args: "FILE|-",
		summary: "load a backup file into a control plane that holds no zone",
		describe: "The restore is one transaction: all of the file or nothing. A control plane that\n" +
			"holds a zone refuses it; signed zones need the signing.key_file that sealed their\n" +
			"keys. The zones keep their serials, so the nodes that hold them need no transfer.\n" +
			"\n" + apiHelp,
		run: runRestore,
	}
}

func runBackup(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	out := fs.String("o", "", "write to `FILE` (- for standard output)")
	pos, err := parse(c, e, fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(pos); err != nil {
		return err
	}
	if *out == "" {
		return usagef("missing -o FILE (- for standard output)")
	}
	cl, url, err := af.client(e)
	if err != nil {
		return err
	}
	if *out == "-" {
		return apiErr(url, cl.Backup(ctx, e.stdout))
	}
	// Write beside the target and rename, so that a failed backup never
	// leaves a truncated file under the name.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".anycastctl-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
	if err := cl.Backup(ctx, tmp); err != nil {
		_ = tmp.Close()
		return apiErr(url, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	e.print(e.stderr, fmt.Sprintf("backup written to %s\n", *out))
	return nil
}

func runRestore(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	pos, err := parse(c, e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want 1 argument, the backup FILE (- for standard input), got %d", len(pos))
	}
	cl, url, err := af.client(e)
	if err != nil {
		return err
	}
	in, err := openInput(pos[0])
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer in.Close()
	st, err := cl.Restore(ctx, in)
	if err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("restored %d zones (%d RRsets), %d signed with %d keys\n", st.Zones, st.RRsets, st.Signed, st.Keys))
	return nil
}
