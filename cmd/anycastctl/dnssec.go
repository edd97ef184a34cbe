package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/anycastdns/anycastdns/internal/anycastctl"
	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/sign"
)

// dnssecCommand manages the signing of zones on the control plane.
func dnssecCommand() *command {
	return &command{
		name: "dnssec", args: "enable|disable|status|ds-seen|keyfile [flags] ZONE",
		summary: "sign zones on the control plane: enable, disable, show keys and the next event",
		describe: "Subcommands:\n" +
			"  dnssec enable ZONE [-policy NAME | -settings JSON]\n" +
			"  dnssec disable ZONE\n" +
			"  dnssec status ZONE [-json]\n" +
			"  dnssec ds-seen ZONE KEYTAG\n" +
			"  dnssec keyfile FILE\n" +
			"\n" +
			"The control plane signs a zone once signing is enabled, with keys it keeps\n" +
			"sealed by its signing.key_file, and re-signs every change; the nodes serve\n" +
			"the signed zone as they receive it. Policies are named in the control\n" +
			"plane's signing.policies (\"default\": a CSK of ECDSAP256SHA256, NSEC).\n" +
			"See docs/dnssec.md.\n" +
			"\n" + apiHelp + "\n" +
			"Run 'anycastctl dnssec SUBCOMMAND -help' for its flags.",
		run: func(ctx context.Context, e *env, c *command, args []string) error {
			return runSub(ctx, e, c, args, []subcommandSpec{
				{"enable", "ZONE [-policy NAME | -settings JSON]", "sign the zone (the whole zone now, every change after)",
					"The first time, keys are made and the whole zone is signed in one new\n" +
						"version. Give its DS (dnssec status) to the parent to make it secure.", runDNSSECEnable},
				{"disable", "ZONE", "remove the zone's DNSSEC records, policy and keys (remove the DS at the parent first)", "", runDNSSECDisable},
				{"status", "ZONE [-json]", "show the zone's policy, keys, their states and the next event with its time", "", runDNSSECStatus},
				{"ds-seen", "ZONE KEYTAG", "confirm that the parent publishes the DS of a rollover's new KSK or CSK",
					"A KSK or CSK rollover publishes the new key (and its CDS) and waits for\n" +
						"its DS at the parent; once the parent has it, this lets the rollover go on.", runDNSSECDSSeen},
				{"keyfile", "FILE", "write a new key file for signing.key_file (32 random bytes, mode 0600)",
					"Back the key file up apart from the database: the keys in it cannot be\n" +
						"read without it.", runDNSSECKeyfile},
			})
		},
	}
}

func runDNSSECEnable(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	policy := fs.String("policy", "", "a policy of the control plane's signing.policies (`NAME`; default \"default\")")
	settings := fs.String("settings", "", "a policy of the zone's own as the API's `JSON` ({\"nsec3\":true}; fields left out are the default's)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	req := api.PutDNSSEC{Enabled: true, Policy: *policy}
	if *settings != "" {
		req.Settings = []byte(*settings)
	}
	st, err := cl.SetDNSSEC(ctx, pos[0], req)
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, st)
	}
	return anycastctl.WriteDNSSEC(e.stdout, st, e.now())
}

func runDNSSECDisable(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	st, err := cl.SetDNSSEC(ctx, pos[0], api.PutDNSSEC{Enabled: false})
	if err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("zone %s: signing disabled, serial %d\n", st.Zone, st.Serial))
	return nil
}

func runDNSSECStatus(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	st, err := cl.DNSSEC(ctx, pos[0])
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, st)
	}
	return anycastctl.WriteDNSSEC(e.stdout, st, e.now())
}

func runDNSSECKeyfile(_ context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	pos, err := parseSub(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(pos[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the operator names the file to write
	if err != nil {
		return fmt.Errorf("key file: %w (an existing key file is never overwritten)", err)
	}
	if _, err := f.Write(sign.GenerateKeyFile()); err != nil {
		_ = f.Close()
		return fmt.Errorf("key file %s: %w", pos[0], err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("key file %s: %w", pos[0], err)
	}
	e.print(e.stdout, fmt.Sprintf("wrote %s: set signing.key_file to it and keep a copy apart from the database\n", pos[0]))
	return nil
}

func runDNSSECDSSeen(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 2, 2)
	if err != nil {
		return err
	}
	tag, err := strconv.ParseUint(pos[1], 10, 16)
	if err != nil || tag == 0 {
		return usagef("KEYTAG %q: a key tag is a number from 1 to 65535", pos[1])
	}
	st, err := cl.DSSeen(ctx, pos[0], uint16(tag))
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, st)
	}
	return anycastctl.WriteDNSSEC(e.stdout, st, e.now())
}
