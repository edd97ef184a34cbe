package lab

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The service endpoints of the service-steering scenarios (issue #14): small
// HTTP servers that this process runs with their sockets in a region's
// client namespace, each on an address of that client's network (a
// documentation address: 198.51.100.10 in A-client's 198.51.100.0/27),
// where the monitors' endpoint checks reach them like any server of a
// service. A scenario switches an endpoint's health (GET /health answers
// 200 "ok" or 503) and its load (GET /load answers {"inflight": N}).

// ServicePort is the port of the service endpoints.
const ServicePort = 80

// Service paths.
const (
	ServiceHealthPath = "/health"
	ServiceLoadPath   = "/load"
	// ServiceLoadField is the field of the load document.
	ServiceLoadField = "inflight"
)

// serviceHostOffset is the host number of a region's first endpoint in its
// client's network (the client itself is host 1).
const serviceHostOffset = 10

// Service is one running service endpoint.
type Service struct {
	// Name is "A1", "A2": the region and the endpoint's number in it.
	Name   string
	Region string
	// Node is the client namespace it runs in.
	Node string
	Addr netip.Addr

	healthy atomic.Bool
	load    atomic.Uint64 // float64 bits
	hits    atomic.Int64
	srv     *http.Server
	done    chan struct{}
	err     error // why Serve ended, other than Shutdown
}

// SetHealthy makes the endpoint's health check pass or fail.
func (s *Service) SetHealthy(ok bool) { s.healthy.Store(ok) }

// SetLoad sets the load the endpoint exposes.
func (s *Service) SetLoad(v float64) { s.load.Store(math.Float64bits(v)) }

// Hits counts the requests the endpoint answered (health and load).
func (s *Service) Hits() int64 { return s.hits.Load() }

// ServeHTTP answers the health check and the load source.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	switch r.URL.Path {
	case ServiceHealthPath:
		if !s.healthy.Load() {
			http.Error(w, "failing (the scenario says so)", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok " + s.Name + "\n"))
	case ServiceLoadPath:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]float64{ServiceLoadField: math.Float64frombits(s.load.Load())})
	default:
		http.NotFound(w, r)
	}
}

// ServiceSpec asks for n endpoints in a region.
type ServiceSpec struct {
	Region string
	N      int
}

// serviceAddr is the address of the i-th endpoint (from 0) of region: host
// serviceHostOffset+i of its first client's IPv4 network.
func (p *plan) serviceAddr(region string, i int) (*Node, netip.Addr, error) {
	n, err := p.node(nodeName(region, "client"))
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("service endpoints of region %s: %w", region, err)
	}
	if n.Role != RoleClient {
		return nil, netip.Addr{}, fmt.Errorf("service endpoints of region %s: %s is not a client", region, n.Name)
	}
	a := n.Network4.Addr().As4()
	host := int(a[3]) + serviceHostOffset + i
	a[3] = byte(host)
	addr := netip.AddrFrom4(a)
	if host > 255 || !n.Network4.Contains(addr) || addr == n.Addr4 {
		return nil, netip.Addr{}, fmt.Errorf("service endpoint %d of region %s: %s is outside %s's network %s", i+1, region, addr, n.Name, n.Network4)
	}
	return n, addr, nil
}

// StartServices starts the endpoints specs ask for, healthy with load 0,
// in the order given ("A1", "A2", "B1"...). StopServices stops them.
func (l *Lab) StartServices(specs ...ServiceSpec) (_ []*Service, err error) {
	var out []*Service
	defer func() {
		if err != nil {
			err = errors.Join(err, StopServices(out))
		}
	}()
	for _, sp := range specs {
		for i := range sp.N {
			n, addr, err := l.plan.serviceAddr(sp.Region, i)
			if err != nil {
				return out, err
			}
			s := &Service{Name: fmt.Sprintf("%s%d", sp.Region, i+1), Region: sp.Region, Node: n.Name, Addr: addr, done: make(chan struct{})}
			s.SetHealthy(true)
			var ln net.Listener
			err = inNamespace(namespacePath(n.Namespace), func() error {
				var err error
				ln, err = net.Listen("tcp4", netip.AddrPortFrom(addr, ServicePort).String())
				return err
			})
			if err != nil {
				return out, fmt.Errorf("service endpoint %s on %s in %s: %w", s.Name, addr, n.Name, err)
			}
			s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
			go func() {
				defer close(s.done)
				if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					s.err = fmt.Errorf("service endpoint %s: %w", s.Name, err)
				}
			}()
			out = append(out, s)
		}
	}
	return out, nil
}

// StopServices stops the endpoints; the error says which had stopped
// serving before.
func StopServices(svcs []*Service) error {
	var errs []error
	for _, s := range svcs {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.srv.Shutdown(ctx) // a request still running after 2 s is cut
		cancel()
		<-s.done
		errs = append(errs, s.err)
	}
	return errors.Join(errs...)
}

// steerAnswer is what one steered query got.
type steerAnswer struct {
	sent, recv time.Time
	addrs      []netip.Addr // sorted
	pop        string
	// scope is the ECS SCOPE PREFIX-LENGTH of the answer; -1 when it
	// carried no ECS option.
	scope int
	rcode int
	err   string // "timeout", a bad answer
}

func (a steerAnswer) ok() bool { return a.err == "" && a.rcode == dns.RcodeSuccess }

// set is the answer's addresses, comma-separated.
func (a steerAnswer) set() string { return joinAddrs(a.addrs) }

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func scopeString(scope int) string {
	if scope < 0 {
		return "none"
	}
	return fmt.Sprint(scope)
}

// dnsAsker sends steered queries from a client's namespace: one UDP socket
// bound to the client's address of one family, unconnected, so that it can
// ask any PoP. It is not safe for concurrent use.
type dnsAsker struct {
	client string
	conn   *net.UDPConn
	buf    []byte
	id     uint16
}

// newAsker opens an asker in client's namespace from its IPv4 or IPv6
// address.
func (l *Lab) newAsker(client string, v6 bool) (*dnsAsker, error) {
	dst := netip.IPv4Unspecified()
	if v6 {
		dst = netip.IPv6Unspecified()
	}
	nsPath, src, err := l.probeSource(client, dst)
	if err != nil {
		return nil, err
	}
	var conn *net.UDPConn
	err = inNamespace(nsPath, func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("asker in %s from %s: %w", client, src, err)
	}
	return &dnsAsker{client: client, conn: conn, buf: make([]byte, 4096), id: uint16(time.Now().UnixNano())}, nil
}

func (d *dnsAsker) Close() { _ = d.conn.Close() }

// ask sends qname A to dst:53 with ecs (an invalid prefix: no ECS option)
// and waits up to timeout for the answer. An error means it could not be
// sent.
func (d *dnsAsker) ask(dst netip.Addr, qname string, ecs netip.Prefix, timeout time.Duration) (steerAnswer, error) {
	d.id++
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	m.Id = d.id
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	if ecs.IsValid() {
		fam := uint16(1)
		if ecs.Addr().Is6() {
			fam = 2
		}
		opt.Option = append(opt.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: fam, SourceNetmask: uint8(ecs.Bits()), Address: ecs.Addr().AsSlice()})
	}
	q, err := m.Pack()
	if err != nil {
		return steerAnswer{}, fmt.Errorf("pack query %s: %w", qname, err)
	}
	a := steerAnswer{sent: time.Now(), scope: -1}
	to := netip.AddrPortFrom(dst, DNSPort)
	if _, err := d.conn.WriteToUDPAddrPort(q, to); err != nil {
		return a, fmt.Errorf("query from %s to %s: %w", d.client, dst, err)
	}
	_ = d.conn.SetReadDeadline(a.sent.Add(timeout))
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(d.buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				a.err = "timeout"
				return a, nil
			}
			return a, fmt.Errorf("read answer from %s in %s: %w", dst, d.client, err)
		}
		if from.Addr().Unmap() != dst {
			continue
		}
		r := new(dns.Msg)
		if err := r.Unpack(d.buf[:n]); err != nil || r.Id != d.id {
			continue // a stray or late answer
		}
		a.recv, a.rcode = time.Now(), r.Rcode
		for _, rr := range r.Answer {
			if x, ok := rr.(*dns.A); ok {
				if ad, ok := netip.AddrFromSlice(x.A); ok {
					a.addrs = append(a.addrs, ad.Unmap())
				}
			}
		}
		slices.SortFunc(a.addrs, netip.Addr.Compare)
		if o := r.IsEdns0(); o != nil {
			for _, e := range o.Option {
				switch e := e.(type) {
				case *dns.EDNS0_NSID:
					b, _ := hex.DecodeString(e.Nsid)
					a.pop = string(b)
				case *dns.EDNS0_SUBNET:
					a.scope = int(e.SourceScope)
				}
			}
		}
		if r.Rcode != dns.RcodeSuccess {
			a.err = "rcode " + dns.RcodeToString[r.Rcode]
		}
		return a, nil
	}
}
