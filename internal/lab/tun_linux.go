package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// openTUN creates the TUN device name inside the namespace at nsPath and
// returns its file. The device lives as long as some process holds the
// file open: when the wire that carries it stops, the device disappears.
// The file is non-blocking so that the runtime poller serves it and Close
// wakes a pending Read.
func openTUN(nsPath, name string) (*os.File, error) {
	var fd int
	err := inNamespace(nsPath, func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("tun name %q: %w", name, err)
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tun %s in %s: %w", name, nsPath, err)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}

// tunFromFD turns an inherited TUN descriptor into a pollable file (exec
// hands descriptors to a child in blocking mode).
func tunFromFD(fd uintptr, name string) (*os.File, error) {
	if err := unix.SetNonblock(int(fd), true); err != nil {
		return nil, fmt.Errorf("tun fd %d: %w", fd, err)
	}
	return os.NewFile(fd, name), nil
}

// ServeWire runs the wire of one link whose two TUN devices this process
// inherited as descriptors fdA and fdB (`anycastlab wire`), until ctx ends
// or a device goes away with its namespace.
func ServeWire(ctx context.Context, cfg WireConfig, logger *slog.Logger, fdA, fdB uintptr) error {
	w, err := NewWire(cfg, logger)
	if err != nil {
		return err
	}
	a, err := tunFromFD(fdA, "tun-a")
	if err != nil {
		return err
	}
	b, err := tunFromFD(fdB, "tun-b")
	if err != nil {
		a.Close()
		return err
	}
	if cfg.DelayFile != "" {
		// SIGUSR1: the link's delay changes (Lab.SetLinkDelay).
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGUSR1)
		defer signal.Stop(sig)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-sig:
				}
				if err := w.reloadDelay(cfg.DelayFile); err != nil {
					logger.Error("wire delay not changed", "link", cfg.Name, "err", err)
				}
			}
		}()
	}
	return w.Run(ctx, a, b)
}
