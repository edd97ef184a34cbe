package lab

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"go.yaml.in/yaml/v3"
)

// The lab's control plane (Options.Control): `anycastd control` in the
// client namespace of the central region, where an operator's management
// host would sit. Its network is routed to every PoP (the PoPs answer that
// client), so it needs no links of its own. The PoPs follow its catalog
// zone: a zone created through its API is provisioned on every PoP, and a
// change is pushed over each PoP's stream the moment it commits (unless
// Options.NoStream), and by NOTIFY and IXFR, all signed with one TSIG key.
// With the stream, the control plane's transfer ACL takes any address with
// the key: a PoP added later joins with the address and the key alone.
const (
	// CatalogZone is the control plane's catalog zone (RFC 9432).
	CatalogZone = "catalog.invalid."
	// ControlAPIPort is the control plane's REST API, on every address of
	// its namespace; ControlXfrPort its transfer and NOTIFY port.
	ControlAPIPort = 8080
	ControlXfrPort = 53
	// ControlStreamPort is the control plane's stream listener.
	ControlStreamPort = 8054
	controlKeyName    = "lab-xfr."
	controlKeyAlg     = "hmac-sha256"
	controlFile       = "control.yaml"
	controlDataDir    = "control.data"
	// controlKeyFile seals the signing keys of the zones the control
	// plane signs (the dnssec-rollover scenario), beside its config.
	controlKeyFile  = "control.signing.key"
	controlTokenLen = 24
)

// controlPlan is where the control plane runs and the secrets it shares
// with the PoPs.
type controlPlan struct {
	Node   string     // the client namespace it runs in
	Addr4  netip.Addr // its transfer, NOTIFY and stream address
	Secret string     // base64 TSIG secret
	Token  string     // API token
	Stream bool       // the PoPs keep a stream to it
	// MonitorToken is the API token the monitors report with.
	MonitorToken string
	// Levels, when set, makes the control plane decide the PoPs' levels
	// from the monitors' reports.
	Levels *Levels
}

// newControlPlan places the control plane in the client namespace of the
// central PoP's region, with a fresh TSIG secret and API token.
func (p *plan) newControlPlan() (*controlPlan, error) {
	pop, err := p.node(p.centralPoP())
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	n, err := p.node(nodeName(pop.Region, "client"))
	if err != nil {
		return nil, fmt.Errorf("control plane: region %s has no client namespace to run in: %w", pop.Region, err)
	}
	secret := make([]byte, 32)
	token := make([]byte, controlTokenLen)
	mtoken := make([]byte, controlTokenLen)
	for _, b := range [][]byte{secret, token, mtoken} {
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
	}
	return &controlPlan{Node: n.Name, Addr4: n.Addr4, Secret: base64.StdEncoding.EncodeToString(secret),
		Token: hex.EncodeToString(token), MonitorToken: hex.EncodeToString(mtoken)}, nil
}

// apiAddr is where the rest of the lab (the monitors) reaches the control
// plane's API.
func (c *controlPlan) apiAddr() netip.AddrPort { return netip.AddrPortFrom(c.Addr4, ControlAPIPort) }

func (c *controlPlan) xfrAddr() netip.AddrPort { return netip.AddrPortFrom(c.Addr4, ControlXfrPort) }

func (c *controlPlan) streamAddr() netip.AddrPort {
	return netip.AddrPortFrom(c.Addr4, ControlStreamPort)
}

func (c *controlPlan) key() TSIGKey {
	return TSIGKey{Name: controlKeyName, Algorithm: controlKeyAlg, Secret: c.Secret}
}

// nodeSettings adds to a PoP's configuration what it needs to follow the
// control plane's catalog.
func (c *controlPlan) nodeSettings(cfg *NodeConfig, pop string) {
	cfg.DataDir = pop + ".data"
	cfg.TSIGKeys = []TSIGKey{c.key()}
	cfg.NotifyAllow = []NodeNotifyACL{{Prefix: netip.PrefixFrom(c.Addr4, 32).String(), Key: controlKeyName}}
	cfg.Catalog = &NodeCatalog{Zone: CatalogZone, Primaries: []NodePrimary{{Addr: c.xfrAddr().String(), Key: controlKeyName}}}
	cfg.SecondaryTimers = &NodeSecondaryTimers{MinRefresh: labMinTimer.String(), MinRetry: labMinTimer.String(), MinExpire: labMinTimer.String()}
	if c.Stream {
		cfg.Control = &NodeControl{Servers: []string{"http://" + c.streamAddr().String()}, Key: controlKeyName, PoP: popName(pop)}
	}
}

// labMinTimer is the floor of every SOA timer of the lab's secondary
// zones: the smallest anycastd accepts, so that the control-outage
// scenario's zone (SOA refresh 1, retry 1, expire 3) expires 3 s after the
// control plane stops.
const labMinTimer = time.Second

// ControlConfig is anycastd's control-plane configuration as the lab
// generates it (see examples/control.yaml for every key).
type ControlConfig struct {
	DataDir string `yaml:"data_dir"`
	API     struct {
		Listen string   `yaml:"listen"`
		Tokens []string `yaml:"tokens"`
	} `yaml:"api"`
	Xfr struct {
		Listen        []string      `yaml:"listen"`
		TSIGKeys      []TSIGKey     `yaml:"tsig_keys"`
		AllowTransfer []ControlACL  `yaml:"allow_transfer"`
		Notify        []NodePrimary `yaml:"notify"`
		Catalog       struct {
			Zone string `yaml:"zone"`
		} `yaml:"catalog"`
	} `yaml:"xfr"`
	// Stream is the listener of the PoPs' streams; nil without.
	Stream *ControlStream `yaml:"stream,omitempty"`
	// Levels is the decision of the PoPs' levels; nil without.
	Levels *ControlLevels `yaml:"levels,omitempty"`
	// Signing lets zones be signed through the API.
	Signing *ControlSigning `yaml:"signing,omitempty"`
}

// ControlSigning is the control plane's signing section: the key file
// that seals the signing keys (policies come with each API call).
type ControlSigning struct {
	KeyFile string `yaml:"key_file"`
}

// ControlStream is the control plane's stream section.
type ControlStream struct {
	Listen []string `yaml:"listen"`
}

// ControlACL allows transfers to a prefix with a key.
type ControlACL struct {
	Prefix string `yaml:"prefix"`
	Key    string `yaml:"key"`
}

// controlConfig builds the control plane's configuration: the API on its
// namespace's loopback, transfers to every PoP's unicast address with the
// key (to any address with the key when the PoPs stream), NOTIFY to each
// PoP, the catalog, and the stream listener.
func (p *plan) controlConfig(c *controlPlan) ControlConfig {
	var cfg ControlConfig
	cfg.DataDir = controlDataDir
	// Every address of its namespace: the loopback for an operator
	// there (anycastctl's default), its own address for the monitors.
	cfg.API.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), ControlAPIPort).String()
	cfg.API.Tokens = []string{c.Token, c.MonitorToken}
	if c.Levels != nil {
		cfg.Levels = c.Levels.section()
	}
	cfg.Signing = &ControlSigning{KeyFile: controlKeyFile}
	cfg.Xfr.Listen = []string{c.xfrAddr().String()}
	cfg.Xfr.TSIGKeys = []TSIGKey{c.key()}
	cfg.Xfr.Catalog.Zone = CatalogZone
	if c.Stream {
		// A PoP with the key is a member, wherever it is: one added later
		// needs no entry here (the join scenario checks it).
		cfg.Stream = &ControlStream{Listen: []string{c.streamAddr().String()}}
		cfg.Xfr.AllowTransfer = []ControlACL{{Prefix: "0.0.0.0/0", Key: controlKeyName}, {Prefix: "::/0", Key: controlKeyName}}
	}
	for _, n := range p.nodes {
		if n.Role != RolePoP {
			continue
		}
		if !c.Stream {
			cfg.Xfr.AllowTransfer = append(cfg.Xfr.AllowTransfer, ControlACL{Prefix: netip.PrefixFrom(n.Addr4, 32).String(), Key: controlKeyName})
		}
		cfg.Xfr.Notify = append(cfg.Xfr.Notify, NodePrimary{Addr: netip.AddrPortFrom(n.Addr4, DNSPort).String(), Key: controlKeyName})
	}
	return cfg
}

// renderControlConfig renders the control plane's configuration file.
func (p *plan) renderControlConfig(c *controlPlan) ([]byte, error) {
	body, err := yaml.Marshal(p.controlConfig(c))
	if err != nil {
		return nil, fmt.Errorf("control config: %w", err)
	}
	head := fmt.Sprintf("# Generated by anycastlab for lab %s: `anycastd control -config` in %s.\n", p.id, c.Node)
	return append([]byte(head), body...), nil
}
