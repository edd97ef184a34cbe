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
	Node  string     // the client namespace it runs in
	Addr4 netip.Addr // its transfer, NOTIFY and stream address
	// Others are the further replicas (Options.ControlReplicas), each in
	// the client namespace of another region; they share a PostgreSQL
	// database (DSN), and every PoP lists every replica.
	Others []controlSite
	// DSN is the PostgreSQL database of the replicas; empty: SQLite in
	// the data directory (one replica).
	DSN    string
	Secret string // base64 TSIG secret
	Token  string // API token
	Stream bool   // the PoPs keep a stream to it
	// MonitorToken is the API token the monitors report with.
	MonitorToken string
	// Levels, when set, makes the control plane decide the PoPs' levels
	// from the monitors' reports.
	Levels *Levels
}

// controlSite is where one replica of the control plane runs.
type controlSite struct {
	Node  string     // the client namespace it runs in
	Addr4 netip.Addr // its transfer, NOTIFY and stream address
}

// sites returns every replica's place, the first replica first.
func (c *controlPlan) sites() []controlSite {
	return append([]controlSite{{Node: c.Node, Addr4: c.Addr4}}, c.Others...)
}

// placeReplicas places replicas-1 further replicas, each in the client
// namespace of another region than the first replica's, in topology
// order.
func (p *plan) placeReplicas(c *controlPlan, replicas int) error {
	first, err := p.node(c.Node)
	if err != nil {
		return err
	}
	for _, r := range p.topo.Regions {
		if len(c.Others) == replicas-1 {
			break
		}
		if r.Name == first.Region {
			continue
		}
		n, err := p.node(nodeName(r.Name, "client"))
		if err != nil {
			continue // a region without a client namespace of that name
		}
		c.Others = append(c.Others, controlSite{Node: n.Name, Addr4: n.Addr4})
	}
	if len(c.Others) < replicas-1 {
		return fmt.Errorf("control plane: %d replicas need %d regions with a client namespace; the topology has %d", replicas, replicas, len(c.Others)+1)
	}
	return nil
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

func (c *controlPlan) xfrAddr() netip.AddrPort { return controlSite{c.Node, c.Addr4}.xfrAddr() }

func (c *controlPlan) streamAddr() netip.AddrPort { return controlSite{c.Node, c.Addr4}.streamAddr() }

func (s controlSite) xfrAddr() netip.AddrPort { return netip.AddrPortFrom(s.Addr4, ControlXfrPort) }

func (s controlSite) streamAddr() netip.AddrPort {
	return netip.AddrPortFrom(s.Addr4, ControlStreamPort)
}

func (c *controlPlan) key() TSIGKey {
	return TSIGKey{Name: controlKeyName, Algorithm: controlKeyAlg, Secret: c.Secret}
}

// nodeSettings adds to a PoP's configuration what it needs to follow the
// control plane's catalog: every replica as a primary (tried in order), a
// NOTIFY sender and a stream server (one stream to each).
func (c *controlPlan) nodeSettings(cfg *NodeConfig, pop string) {
	cfg.DataDir = pop + ".data"
	cfg.TSIGKeys = []TSIGKey{c.key()}
	cfg.NotifyAllow = nil
	cfg.Catalog = &NodeCatalog{Zone: CatalogZone}
	var servers []string
	for _, s := range c.sites() {
		cfg.NotifyAllow = append(cfg.NotifyAllow, NodeNotifyACL{Prefix: netip.PrefixFrom(s.Addr4, 32).String(), Key: controlKeyName})
		cfg.Catalog.Primaries = append(cfg.Catalog.Primaries, NodePrimary{Addr: s.xfrAddr().String(), Key: controlKeyName})
		servers = append(servers, "http://"+s.streamAddr().String())
	}
	cfg.SecondaryTimers = &NodeSecondaryTimers{MinRefresh: labMinTimer.String(), MinRetry: labMinTimer.String(), MinExpire: labMinTimer.String()}
	if c.Stream {
		cfg.Control = &NodeControl{Servers: servers, Key: controlKeyName, PoP: popName(pop)}
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
	// Store is the PostgreSQL database of several replicas; nil: SQLite
	// in the data directory.
	Store *ControlStore `yaml:"store,omitempty"`
	// Signing lets zones be signed through the API.
	Signing *ControlSigning `yaml:"signing,omitempty"`
}

// ControlStore is the control plane's store section.
type ControlStore struct {
	Postgres struct {
		DSN string `yaml:"dsn"`
	} `yaml:"postgres"`
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

// controlConfig builds the configuration of replica i (0 the first) of the
// control plane: the API on every address of its namespace, transfers to
// every PoP's unicast address with the key (to any address with the key
// when the PoPs stream), NOTIFY to each PoP, the catalog, the stream
// listener, and the shared PostgreSQL database when there is one.
func (p *plan) controlConfig(c *controlPlan, i int) ControlConfig {
	site := c.sites()[i]
	var cfg ControlConfig
	cfg.DataDir = controlDataDirOf(i)
	if c.DSN != "" {
		cfg.Store = &ControlStore{}
		cfg.Store.Postgres.DSN = c.DSN
	}
	// Every address of its namespace: the loopback for an operator
	// there (anycastctl's default), its own address for the monitors.
	cfg.API.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), ControlAPIPort).String()
	cfg.API.Tokens = []string{c.Token, c.MonitorToken}
	if c.Levels != nil {
		cfg.Levels = c.Levels.section()
	}
	cfg.Signing = &ControlSigning{KeyFile: controlKeyFile}
	cfg.Xfr.Listen = []string{site.xfrAddr().String()}
	cfg.Xfr.TSIGKeys = []TSIGKey{c.key()}
	cfg.Xfr.Catalog.Zone = CatalogZone
	if c.Stream {
		// A PoP with the key is a member, wherever it is: one added later
		// needs no entry here (the join scenario checks it).
		cfg.Stream = &ControlStream{Listen: []string{site.streamAddr().String()}}
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

// renderControlConfig renders the configuration file of replica i.
func (p *plan) renderControlConfig(c *controlPlan, i int) ([]byte, error) {
	body, err := yaml.Marshal(p.controlConfig(c, i))
	if err != nil {
		return nil, fmt.Errorf("control config: %w", err)
	}
	head := fmt.Sprintf("# Generated by anycastlab for lab %s: `anycastd control -config` in %s.\n", p.id, c.sites()[i].Node)
	return append([]byte(head), body...), nil
}

// controlFileOf and controlDataDirOf are replica i's configuration file
// and data directory: control.yaml and control.data for the first,
// control2.yaml and control2.data for the second, and so on.
func controlFileOf(i int) string {
	if i == 0 {
		return controlFile
	}
	return fmt.Sprintf("control%d.yaml", i+1)
}

func controlDataDirOf(i int) string {
	if i == 0 {
		return controlDataDir
	}
	return fmt.Sprintf("control%d.data", i+1)
}
