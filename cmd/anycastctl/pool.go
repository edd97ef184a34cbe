package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// poolCommand manages the pools (steered RRsets) of a zone over the
// control plane's API.
func poolCommand() *command {
	return &command{
		name: "pool", args: "set|get|list|delete [flags] ZONE [NAME TYPE [ENDPOINT...]]",
		summary: "define, show and delete the steered answers (pools) of a zone on the control plane",
		describe: "Subcommands:\n" +
			"  pool set ZONE NAME TYPE [-ttl N] [-policy P,...] [-first-n N] ENDPOINT...\n" +
			"  pool set ZONE NAME TYPE -file POOL.json\n" +
			"  pool get ZONE NAME TYPE [-json]\n" +
			"  pool list ZONE [-json]\n" +
			"  pool delete ZONE NAME TYPE\n" +
			"  pool status ZONE [-json]\n" +
			"\n" +
			"A pool answers the A or AAAA queries for NAME with endpoints chosen by its\n" +
			"policy chain (" + strings.Join(steer.Policies, ", ") + "), on every PoP\n" +
			"alike. ENDPOINT is ADDRESS or NAME, then optional ,weight=W ,region=R\n" +
			"and ,capacity=C: pool set example.com svc A -policy up,weighted\n" +
			"192.0.2.1,weight=70 192.0.2.2,weight=30. -region PREFIX=REGION (repeatable)\n" +
			"places clients for geo and latency. See docs/steering.md.\n" +
			"\n" + apiHelp + "\n" +
			"Run 'anycastctl pool SUBCOMMAND -help' for its flags.",
		run: func(ctx context.Context, e *env, c *command, args []string) error {
			return runSub(ctx, e, c, args, []subcommandSpec{
				{"set", "ZONE NAME TYPE [-ttl N] [-policy P,...] [-first-n N] (ENDPOINT... | -file POOL.json)",
					"define the pool of one name and type (A or AAAA)",
					"Each ENDPOINT is an address of the pool's type, or a name (answered as a\n" +
						"CNAME to it), with optional ,weight=W (default 1), ,region=R and\n" +
						",capacity=C. -file reads the pool as the API's JSON ({\"ttl\":..,\"policy\":\n" +
						"[..],\"endpoints\":[..]}; - for standard input) instead.", runPoolSet},
				{"get", "ZONE NAME TYPE [-json]", "show one pool", "", runPoolGet},
				{"list", "ZONE [-json]", "list the pools of a zone", "", runPoolList},
				{"delete", "ZONE NAME TYPE", "delete a pool: the name answers from its records again", "", runPoolDelete},
				{"status", "ZONE [-json]", "show the endpoints' health as the monitors see it and the steering state version",
					"Each endpoint of each pool with a check: down or up in the state sent to\n" +
						"every node (its pool's quorum of fresh vantage points), then what each\n" +
						"vantage point saw last: state, RTT, load, age (stale: not counted).", runPoolStatus},
			})
		},
	}
}

func runPoolSet(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	ttl := fs.Uint("ttl", 30, "the `TTL` of the steered answers, in seconds")
	policy := fs.String("policy", "", "the policy chain, comma-separated (`P,...`: "+strings.Join(steer.Policies, ", ")+"); none: every endpoint")
	firstN := fs.Int("first-n", 0, "how many endpoints first-n keeps (`N`, default 1)")
	file := fs.String("file", "", "read the pool as JSON from `FILE` (- for standard input)")
	regions := map[string]string{}
	fs.Func("region", "map a client `PREFIX=REGION` for geo and latency (repeatable): -region 198.51.100.0/24=eu", func(v string) error {
		prefix, region, ok := strings.Cut(v, "=")
		if !ok || prefix == "" || region == "" {
			return fmt.Errorf("want PREFIX=REGION, got %q", v)
		}
		regions[prefix] = region
		return nil
	})
	pos, err := parseSub(e, sc, fs, args, 3, 3+steer.MaxEndpoints)
	if err != nil {
		return err
	}
	var p steer.Pool
	if *file != "" {
		if len(pos) > 3 || len(regions) > 0 {
			return sc.usage(usagef("give endpoints and regions as arguments or -file, not both"))
		}
		if p, err = readPoolFile(e, *file); err != nil {
			return err
		}
	} else {
		if len(pos) == 3 {
			return sc.usage(usagef("no ENDPOINT given"))
		}
		if *ttl > steer.MaxTTL {
			return sc.usage(usagef("-ttl must be at most %d, got %d", steer.MaxTTL, *ttl))
		}
		p = steer.Pool{TTL: uint32(*ttl), FirstN: *firstN}
		if len(regions) > 0 {
			p.Regions = regions
		}
		if *policy != "" {
			p.Policy = strings.Split(*policy, ",")
		}
		for _, a := range pos[3:] {
			ep, err := parseEndpoint(a)
			if err != nil {
				return sc.usage(err)
			}
			p.Endpoints = append(p.Endpoints, ep)
		}
	}
	cl, url, err := af.client(e)
	if err != nil {
		return sc.usage(err)
	}
	res, err := cl.SetPool(ctx, pos[0], pos[1], pos[2], p)
	if err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("zone %s serial %d\n", strings.ToLower(strings.TrimSuffix(pos[0], "."))+".", res.Serial))
	return writePools(e.stdout, []api.Pool{res.Pool})
}

// readPoolFile reads a pool in the API's JSON from a file or stdin.
func readPoolFile(e *env, name string) (steer.Pool, error) {
	var p steer.Pool
	var data []byte
	var err error
	if name == "-" {
		if e.stdin == nil {
			return p, fmt.Errorf("read pool: no standard input")
		}
		data, err = io.ReadAll(e.stdin)
	} else {
		var f io.ReadCloser
		if f, err = openInput(name); err == nil {
			data, err = io.ReadAll(f)
			f.Close()
		}
	}
	if err != nil {
		return p, fmt.Errorf("read pool %s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("read pool %s: %w", name, err)
	}
	return p, nil
}

// parseEndpoint reads ADDRESS|NAME[,weight=W][,region=R][,capacity=C].
func parseEndpoint(s string) (steer.Endpoint, error) {
	var ep steer.Endpoint
	parts := strings.Split(s, ",")
	if parts[0] == "" {
		return ep, usagef("endpoint %q: an address or a name comes first", s)
	}
	if a, err := netip.ParseAddr(parts[0]); err == nil {
		ep.Address = a
	} else {
		ep.Name = parts[0]
	}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return ep, usagef("endpoint %q: %q is not KEY=VALUE (weight, region, capacity)", s, kv)
		}
		switch k {
		case "weight":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return ep, usagef("endpoint %q: weight %q: want a whole number from 0 to %d", s, v, uint32(1<<32-1))
			}
			w := uint32(n)
			ep.Weight = &w
		case "region":
			ep.Region = v
		case "capacity":
			c, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return ep, usagef("endpoint %q: capacity %q: want a number", s, v)
			}
			ep.Capacity = c
		default:
			return ep, usagef("endpoint %q: unknown key %q (weight, region, capacity)", s, k)
		}
	}
	return ep, nil
}

func runPoolGet(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 3, 3)
	if err != nil {
		return err
	}
	p, err := cl.Pool(ctx, pos[0], pos[1], pos[2])
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, p)
	}
	return writePools(e.stdout, []api.Pool{p})
}

func runPoolList(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	ps, err := cl.Pools(ctx, pos[0])
	if err != nil {
		return apiErr(url, err)
	}
	if *asJSON {
		return printJSON(e, api.PoolList{Pools: ps})
	}
	if len(ps) == 0 {
		e.print(e.stdout, "no pools\n")
		return nil
	}
	return writePools(e.stdout, ps)
}

func runPoolDelete(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	pos, cl, url, err := af.parse(e, sc, fs, args, 3, 3)
	if err != nil {
		return err
	}
	res, err := cl.DeletePool(ctx, pos[0], pos[1], pos[2])
	if err != nil {
		return apiErr(url, err)
	}
	e.print(e.stdout, fmt.Sprintf("deleted pool %s %s from zone %s, serial %d\n", pos[1], strings.ToUpper(pos[2]), pos[0], res.Serial))
	return nil
}

// writePools prints each pool: a line for the pool, a table of its
// endpoints.
func writePools(w io.Writer, ps []api.Pool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, p := range ps {
		if i > 0 {
			_, _ = fmt.Fprintln(tw)
		}
		policy := strings.Join(p.Policy, ",")
		if policy == "" {
			policy = "(all endpoints)"
		}
		line := fmt.Sprintf("%s %s  ttl %d  policy %s", p.Name, p.Type, p.TTL, policy)
		if p.FirstN > 0 {
			line += fmt.Sprintf("  first-n %d", p.FirstN)
		}
		_, _ = fmt.Fprintln(tw, line)
		if c := p.Check; c != nil {
			d := c.WithDefaults()
			what := fmt.Sprintf("%s port %d", d.Type, d.Port)
			switch d.Type {
			case "http", "https":
				what += fmt.Sprintf(" %s status %d", d.Path, d.Status)
			case "dns":
				what += fmt.Sprintf(" %s %s", d.Query, strings.ToUpper(d.QueryType))
			}
			_, _ = fmt.Fprintf(tw, "  check %s every %v timeout %v rise %d fall %d quorum %d\n",
				what, d.Interval.Duration, d.Timeout.Duration, d.Rise, d.Fall, d.Quorum)
		}
		if len(p.Regions) > 0 {
			prefixes := slices.Sorted(maps.Keys(p.Regions))
			var parts []string
			for _, pr := range prefixes {
				parts = append(parts, pr+"="+p.Regions[pr])
			}
			_, _ = fmt.Fprintf(tw, "  regions %s\n", strings.Join(parts, " "))
		}
		_, _ = fmt.Fprintln(tw, "  ENDPOINT\tWEIGHT\tREGION\tCAPACITY")
		for _, ep := range p.Endpoints {
			target := ep.Name
			if ep.Address.IsValid() {
				target = ep.Address.String()
			}
			weight := "1"
			if ep.Weight != nil {
				weight = strconv.FormatUint(uint64(*ep.Weight), 10)
			}
			region, capa := ep.Region, "-"
			if region == "" {
				region = "-"
			}
			if ep.Capacity > 0 {
				capa = strconv.FormatFloat(ep.Capacity, 'g', -1, 64)
			}
			_, _ = fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", target, weight, region, capa)
		}
	}
	return tw.Flush()
}

func runPoolStatus(ctx context.Context, e *env, sc *subcommand, args []string) error {
	fs := flag.NewFlagSet(sc.name, flag.ContinueOnError)
	af := addAPIFlags(fs)
	asJSON := fs.Bool("json", false, "print the fleet view's steering part as JSON")
	pos, cl, url, err := af.parse(e, sc, fs, args, 1, 1)
	if err != nil {
		return err
	}
	v, err := cl.Fleet(ctx, "")
	if err != nil {
		return apiErr(url, err)
	}
	zone := strings.ToLower(strings.TrimSuffix(pos[0], ".")) + "."
	sv := v.Steering
	eps := sv.Pools[:0:0]
	for _, ep := range sv.Pools {
		if ep.Zone == zone {
			eps = append(eps, ep)
		}
	}
	sv.Pools = eps
	if *asJSON {
		return printJSON(e, sv)
	}
	var b strings.Builder
	if sv.Version == 0 {
		b.WriteString("steering state: none yet (no endpoint reports)\n")
	} else {
		fmt.Fprintf(&b, "steering state: version %d since %s\n", sv.Version, sv.Since.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if len(eps) == 0 {
		fmt.Fprintf(&b, "no endpoint of zone %s is reported by a monitor\n", zone)
		e.print(e.stdout, b.String())
		return nil
	}
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "POOL\tENDPOINT\tSTATE\tQUORUM\tVANTAGE\tSEEN\tRTT\tLOAD\tAGE\tERROR")
	for _, ep := range eps {
		state := "up"
		if ep.Down {
			state = "down"
		}
		for i, vt := range ep.Vantages {
			pool, end, st, q := "", "", "", ""
			if i == 0 {
				pool, end, st, q = ep.Pool, ep.Endpoint, state, strconv.Itoa(ep.Quorum)
			}
			load := "-"
			if vt.Load != nil {
				load = strconv.FormatFloat(*vt.Load, 'f', -1, 64)
			}
			age := fmt.Sprintf("%.1fs", vt.AgeSeconds)
			if vt.Stale {
				age += " (stale)"
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1fms\t%s\t%s\t%s\n", pool, end, st, q, vt.Vantage, vt.State, vt.RTTms, load, age, vt.Error)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	e.print(e.stdout, b.String())
	return nil
}
