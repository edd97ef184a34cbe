package config

import (
	"fmt"
	"strings"
)

// RecommendedRRLRate is the limits.rrl.rate that the warnings and
// examples/node.yaml recommend for a server on the internet: answers a
// second per client network (/24, /56) and answer kind. A resolver asks an
// authoritative server for one name at most once per TTL, so twenty
// identical answers a second to one network is already a flood; with the
// default slip of 2, every second answer over the limit still goes out
// truncated, so a real resolver on the same network as a spoofed flood
// retries over TCP and is answered.
const RecommendedRRLRate = 20

// Advice is a warning about a valid configuration: a setting that a
// server on the internet should not run with.
type Advice struct {
	Pos  string // "file:line:column" of the setting (or of its section); "" when unknown
	Path string // the setting, such as "limits.rrl.rate"
	Msg  string
}

func (a Advice) String() string {
	var b strings.Builder
	if a.Pos != "" {
		b.WriteString(a.Pos + ": ")
	}
	b.WriteString(a.Path + ": " + a.Msg)
	return b.String()
}

// Advice returns the warnings about n that the node logs at start and on
// reload:
//   - response rate limiting off while DNS listens on a non-loopback
//     address: the server is a ready amplifier for reflection floods;
//   - DNS cookies without a secret on a node that announces anycast
//     prefixes: each PoP makes up its own, so a client moved to another
//     PoP presents a cookie that PoP cannot check.
func (n *Node) Advice() []Advice {
	var out []Advice
	if n.Limits.RRL.Rate == 0 {
		var public []string
		first := ""
		for i, a := range n.Listen {
			if a.IsValid() && !a.Addr().IsLoopback() {
				public = append(public, a.String())
				if first == "" {
					first = indexPath("listen", i)
				}
			}
		}
		if len(public) > 0 {
			out = append(out, n.advice("limits.rrl.rate", first, fmt.Sprintf(
				"response rate limiting is off while DNS listens on %s, not loopback: the server can be used "+
					"to reflect and amplify floods; set limits.rrl.rate (%d is a good start, see examples/node.yaml)",
				strings.Join(public, ", "), RecommendedRRLRate)))
		}
	}
	if n.Limits.Cookies.Enabled && n.Limits.Cookies.Secret == "" && n.BGP != nil {
		out = append(out, n.advice("limits.cookies.secret", "bgp",
			"no secret: this PoP makes up a random one at each start, so the PoPs of the anycast set cannot "+
				"check each other's cookies; give every PoP the same 32 hex digits (openssl rand -hex 16)"))
	}
	return out
}

// advice positions a warning about path at path when the document sets it,
// else at where, the setting that makes it matter.
func (n *Node) advice(path, where, msg string) Advice {
	a := Advice{Path: path, Msg: msg}
	if n.src == nil {
		return a
	}
	p, ok := n.src.pos[path]
	if !ok {
		p = n.src.lookup(where)
	}
	if p.line > 0 {
		a.Pos = fmt.Sprintf("%s:%d:%d", n.src.file, p.line, p.col)
	}
	return a
}
