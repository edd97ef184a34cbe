package announce

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// childEnv carries the JSON childConfig when the test binary runs as the
// speaker process of the interop test.
const childEnv = "ANNOUNCE_INTEROP_CHILD"

// childConfig is what the interop test passes to the speaker child.
type childConfig struct {
	Router   netip.Addr
	Local    netip.Addr
	NextHop6 netip.Addr
	BFD      bool
	Hold     time.Duration
	LogLevel slog.Level
}

// childMain runs a speaker until stdin closes or SIGTERM. It reads commands
// from stdin, one per line: "all" announces every prefix, "none" withdraws
// them, "level L" sets the level (shed-N prepends N); each is answered with
// "ok" or "error ...". It prints "pid N" first and
// "ready" once the BGP server runs.
func childMain() int {
	var cc childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cc); err != nil {
		fmt.Fprintf(os.Stderr, "child config: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cc.LogLevel}))
	all := []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8::53/128")}
	s, err := New(Config{
		ASN:      ourASN,
		RouterID: cc.Local,
		Peers: []Peer{{
			Address: cc.Router, LocalAddress: cc.Local, ASN: peerASN,
			HoldTime: cc.Hold, Keepalive: cc.Hold / 3,
			BFD: BFD{Enabled: cc.BFD, Interval: 100 * time.Millisecond, Multiplier: 3},
		}},
		Announce: []Announcement{
			{Prefix: all[0], Communities: []uint32{ourASN<<16 | 53}},
			{Prefix: all[1], NextHop: cc.NextHop6},
		},
		Levels: [3]Attributes{{Prepend: 1}, {Prepend: 2}, {Prepend: 3}},
	}, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := s.Set(all); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	fmt.Printf("pid %d\n", os.Getpid())
	select {
	case <-s.Ready():
		fmt.Println("ready")
	case err := <-done:
		fmt.Fprintf(os.Stderr, "run: %v\n", err)
		return 1
	}
	go func() {
		defer cancel()
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			var err error
			cmd, arg, _ := strings.Cut(sc.Text(), " ")
			switch cmd {
			case "all":
				err = s.Set(all)
			case "none":
				err = s.Set(nil)
			case "level":
				var l level.Level
				if l, err = level.Parse(arg); err == nil {
					err = s.SetLevel(l)
				}
			default:
				err = fmt.Errorf("unknown command %q", sc.Text())
			}
			if err != nil {
				fmt.Printf("error %v\n", err)
				continue
			}
			fmt.Println("ok")
		}
	}()
	if err := <-done; err != nil {
		fmt.Fprintf(os.Stderr, "run: %v\n", err)
		return 1
	}
	return 0
}
