package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named namespaces.
const netnsDir = "/run/netns"

func namespacePath(name string) string { return filepath.Join(netnsDir, name) }

// run runs a command and returns its output; a failure carries the output.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// inNamespace runs fn on an OS thread that has entered the network
// namespace at path. Sockets and TUN devices fn opens belong to that
// namespace for their whole life. fn runs on its own goroutine so that a
// thread whose namespace cannot be restored is thrown away, never reused.
func inNamespace(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open namespace %s: %w", path, err)
			return
		}
		defer func() { _ = target.Close() }()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it ends with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// setSysctls writes net.* sysctls in the namespace at path.
func setSysctls(path string, kv [][2]string) error {
	return inNamespace(path, func() error {
		for _, s := range kv {
			file := "/proc/sys/" + strings.ReplaceAll(s[0], ".", "/")
			if err := os.WriteFile(file, []byte(s[1]), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", s[0], s[1], err)
			}
		}
		return nil
	})
}

func readSysctl(path, key string) (string, error) {
	var v []byte
	err := inNamespace(path, func() error {
		var err error
		v, err = os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		return err
	})
	return strings.TrimSpace(string(v)), err
}

// listNamespaces returns the named namespaces whose names start with prefix.
func listNamespaces(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func namespaceExists(name string) bool {
	_, err := os.Stat(namespacePath(name))
	return err == nil
}

// deleteNamespace removes a named namespace; one that is already gone is
// not an error. Links inside it go with it: veths, and TUN devices whose
// wire has stopped.
func deleteNamespace(ctx context.Context, name string) error {
	if !namespaceExists(name) {
		return nil
	}
	_, err := run(ctx, "ip", "netns", "delete", name)
	return err
}

// nsHandle is a netlink handle bound to one namespace.
type nsHandle struct {
	name string
	ns   netns.NsHandle
	nl   *netlink.Handle
}

func openHandle(name string) (*nsHandle, error) {
	ns, err := netns.GetFromPath(namespacePath(name))
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	return &nsHandle{name: name, ns: ns, nl: nl}, nil
}

func (h *nsHandle) Close() {
	h.nl.Close()
	_ = h.ns.Close()
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}

func netIP(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

// addAddr adds addr/bits to link, with peer for point-to-point devices.
// IPv6 addresses skip duplicate address detection: nothing else can hold
// them and a tentative address would delay BGP.
func (h *nsHandle) addAddr(link netlink.Link, a netip.Addr, bits int, peer netip.Addr) error {
	addr := &netlink.Addr{IPNet: ipNet(a, bits)}
	if peer.IsValid() {
		addr.Peer = ipNet(peer, peer.BitLen())
	}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.nl.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add %s/%d to %s in %s: %w", a, bits, link.Attrs().Name, h.name, err)
	}
	return nil
}

// kernelPrefixes returns the destinations of the main routing table.
func (h *nsHandle) kernelPrefixes() (map[netip.Prefix]bool, error) {
	routes, err := h.nl.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("routes of %s: %w", h.name, err)
	}
	out := map[netip.Prefix]bool{}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		out[netip.PrefixFrom(a.Unmap(), ones)] = true
	}
	return out, nil
}
