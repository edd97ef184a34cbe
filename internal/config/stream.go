package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"time"

	"go.yaml.in/yaml/v3"
)

// The change stream between a control plane and its nodes (package
// stream): the node's "control" section, the control plane's "stream"
// section.

// ControlLink is how a node follows its control planes over the stream:
// with the address of each and a key, a node joins the fleet by itself.
type ControlLink struct {
	// Servers are the control planes' stream addresses,
	// http://host:port (unencrypted HTTP/2) or https://host:port; at
	// least one. The node keeps one stream to each.
	Servers []string
	// Key names the tsig_keys entry shared with the control planes.
	Key string
	// PoP is the PoP the node reports (default: identity.name).
	PoP string
	// CAFile is a PEM bundle of the authorities that sign the control
	// planes' certificates (https only; default: the system's roots).
	CAFile string
}

// Stream is the control plane's listener for the nodes' streams.
type Stream struct {
	// Listen holds the addresses of the stream listener; empty = no
	// stream (nodes follow by NOTIFY and IXFR alone, and there is no
	// fleet).
	Listen []netip.AddrPort
	// TLSCert and TLSKey are PEM files: with them the stream is HTTP/2
	// over TLS, without them unencrypted HTTP/2 (every frame is still
	// authenticated with the node's key, but not encrypted).
	TLSCert, TLSKey string
	// Keys names the xfr.tsig_keys entries nodes may join with (default:
	// every one).
	Keys []string
	// Heartbeat is how often nodes report and the control plane sends a
	// keepalive, 100ms..1m (default 1s); three intervals of silence end
	// a stream.
	Heartbeat time.Duration
}

// Enabled reports whether the control plane serves streams.
func (s Stream) Enabled() bool { return len(s.Listen) > 0 }

const (
	defaultStreamHeartbeat = time.Second
	minStreamHeartbeat     = 100 * time.Millisecond
	maxStreamHeartbeat     = time.Minute
)

// controlField is the node's "control" section.
func (d *decoder) controlField(n *Node) field {
	return field{"control", func(v *yaml.Node, p string) {
		if isNull(v) {
			return
		}
		c := &ControlLink{}
		n.Control = c
		d.mapping(v, p, []field{
			{"servers", func(v *yaml.Node, p string) {
				items := d.sequence(v, p)
				c.Servers = make([]string, len(items))
				for i, item := range items {
					d.str(item, indexPath(p, i), &c.Servers[i])
				}
			}},
			{"key", func(v *yaml.Node, p string) { c.Key, _ = parseScalar(d, v, p, parseKeyRef) }},
			{"pop", func(v *yaml.Node, p string) { d.str(v, p, &c.PoP) }},
			{"ca_file", func(v *yaml.Node, p string) { d.file(v, p, &c.CAFile) }},
		})
	}}
}

// streamField is the control plane's "stream" section.
func (d *decoder) streamField(c *Control) field {
	return field{"stream", func(v *yaml.Node, p string) {
		s := &c.Stream
		d.mapping(v, p, []field{
			{"listen", func(v *yaml.Node, p string) {
				items := d.sequence(v, p)
				s.Listen = make([]netip.AddrPort, len(items))
				for i, item := range items {
					s.Listen[i], _ = parseScalar(d, item, indexPath(p, i), parseAddrPort)
				}
			}},
			{"tls_cert", func(v *yaml.Node, p string) { d.file(v, p, &s.TLSCert) }},
			{"tls_key", func(v *yaml.Node, p string) { d.file(v, p, &s.TLSKey) }},
			{"keys", func(v *yaml.Node, p string) {
				items := d.sequence(v, p)
				s.Keys = make([]string, len(items))
				for i, item := range items {
					s.Keys[i], _ = parseScalar(d, item, indexPath(p, i), parseXfrKeyName)
				}
			}},
			{"heartbeat", func(v *yaml.Node, p string) { d.duration(v, p, &s.Heartbeat) }},
		})
	}}
}

// ControlURL checks a control plane's stream address: http or https, a
// host and a port, nothing else.
func ControlURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: want http://host:port or https://host:port", s)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" || port == "0" {
		return nil, fmt.Errorf("%q: want a host and a port", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: only scheme, host and port", s)
	}
	return u, nil
}

// control checks the node's control section.
func (v *validator) control(n *Node) {
	c := n.Control
	if c == nil {
		return
	}
	if len(c.Servers) == 0 {
		v.add("control.servers", "at least one control plane address is required")
	}
	seen := map[string]int{}
	https := false
	for i, s := range c.Servers {
		p := indexPath("control.servers", i)
		u, err := ControlURL(s)
		if err != nil {
			v.add(p, "%v", err)
			continue
		}
		https = https || u.Scheme == "https"
		if j, dup := seen[u.Host]; dup {
			v.add(p, "duplicate control plane %s (also control.servers[%d])", u.Host, j)
		}
		seen[u.Host] = i
	}
	switch {
	case c.Key == "":
		if !v.bad("control.key") {
			v.add("control.key", "required: the name of a tsig_keys entry the control planes know")
		}
	case !v.bad("control.key"):
		known := false
		for _, k := range n.TSIGKeys {
			known = known || k.Name == c.Key
		}
		if !known {
			v.add("control.key", "unknown key %s (not in tsig_keys)", c.Key)
		}
	}
	if len(c.PoP) > 255 {
		v.add("control.pop", "must be at most 255 bytes, got %d", len(c.PoP))
	}
	if c.CAFile != "" && !https {
		v.add("control.ca_file", "only for https:// control planes")
	}
}

// stream checks the control plane's stream section.
func (v *validator) stream(c *Control, tcp map[netip.AddrPort]string) {
	s := &c.Stream
	for i, a := range s.Listen {
		p := indexPath("stream.listen", i)
		if !a.IsValid() {
			v.add(p, "invalid address")
			continue
		}
		v.httpListen(p, a, tcp)
	}
	if !s.Enabled() {
		for _, f := range []struct {
			path string
			set  bool
		}{{"stream.tls_cert", s.TLSCert != ""}, {"stream.tls_key", s.TLSKey != ""}, {"stream.keys", len(s.Keys) > 0}} {
			if f.set {
				v.add(f.path, "set without stream.listen")
			}
		}
		return
	}
	if len(c.Xfr.Listen) == 0 {
		v.add("stream.listen", "the stream pushes what the transfer server serves: xfr.listen is required")
	}
	if len(c.Xfr.TSIGKeys) == 0 && !v.bad("xfr.tsig_keys") {
		v.add("stream.listen", "nodes join with a key of xfr.tsig_keys: at least one is required")
	}
	switch {
	case (s.TLSCert == "") != (s.TLSKey == ""):
		path := "stream.tls_key"
		if s.TLSCert == "" {
			path = "stream.tls_cert"
		}
		v.add(path, "tls_cert and tls_key go together")
	}
	for i, k := range s.Keys {
		p := indexPath("stream.keys", i)
		if k == "" || v.bad(p) {
			if k == "" {
				v.add(p, "empty key name")
			}
			continue
		}
		known := false
		for _, x := range c.Xfr.TSIGKeys {
			known = known || x.Name == k
		}
		if !known {
			v.add(p, "unknown key %s (not in xfr.tsig_keys)", k)
		}
	}
	if s.Heartbeat < minStreamHeartbeat || s.Heartbeat > maxStreamHeartbeat {
		v.add("stream.heartbeat", "must be between %s and %s, got %s", minStreamHeartbeat, maxStreamHeartbeat, s.Heartbeat)
	}
}
