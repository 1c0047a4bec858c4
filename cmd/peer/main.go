// Command peer is a Bugout peer in Go: it joins Bugout rooms through
// WebTorrent trackers (a Box's signald by default) over WebRTC, wire
// compatible with Bugout in browsers and node.
//
//	peer id                          create or show this peer's identity
//	peer chat ROOM                   stdin lines to the room; the room to stdout
//	peer rpc ADDRESS CALL [JSON]     call a Bugout server and print the result
//	peer messageboard                serve Bugout's messageboard demo API
//
// Common flags: -data DIR (identity and state), -tracker URL (repeatable),
// -ice-server URL (repeatable), -ice-url URL (a Box's /ice), -log-level.
// SIGINT or SIGTERM leaves the room; a second signal exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/boxsignal/boxsignal/bugout"
	"github.com/boxsignal/boxsignal/bugout/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usageText = `usage:
  peer id [flags]                        create or show this peer's identity
  peer chat [flags] ROOM                 send stdin lines to ROOM, print what happens there
  peer rpc [flags] ADDRESS CALL [JSON]   call CALL on the Bugout server ADDRESS, print the result
  peer messageboard [flags]              serve Bugout's messageboard (ping, post, list)

Run peer COMMAND -h for the flags.
`

// run is peer with its surroundings passed in, so tests run it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return 2
	}
	cmds := map[string]func(context.Context, []string, io.Reader, io.Writer, io.Writer) error{
		"id":           runID,
		"chat":         runChat,
		"rpc":          runRPC,
		"messageboard": runMessageboard,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		if args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
			fmt.Fprint(stdout, usageText)
			return 0
		}
		fmt.Fprintf(stderr, "peer: unknown command %q\n%s", args[0], usageText)
		return 2
	}
	err := cmd(ctx, args[1:], stdin, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "peer %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "peer %s: %v\n", args[0], err)
		return 1
	}
}

var errUsage = errors.New("usage")

// options are the flags every subcommand shares.
type options struct {
	dataDir    string
	trackers   list
	iceServers list
	iceURL     string
	logLevel   string
	offers     int
}

type list []string

func (l *list) String() string { return strings.Join(*l, ",") }
func (l *list) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// DefaultTracker is a signald on this machine.
const DefaultTracker = "ws://localhost:8000"

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet("peer "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.dataDir, "data", defaultDataDir(), "directory for the identity seed and state")
	fs.Var(&o.trackers, "tracker", "WebSocket tracker URL; repeat or comma-separate for several (default "+DefaultTracker+")")
	fs.Var(&o.iceServers, "ice-server", "STUN/TURN URL for WebRTC (turn: URLs take no credentials here; use -ice-url); default none")
	fs.StringVar(&o.iceURL, "ice-url", "", "a Box's /ice URL (e.g. https://box.example/ice) for its STUN/TURN servers")
	fs.StringVar(&o.logLevel, "log-level", "warn", "debug, info, warn or error (to stderr)")
	fs.IntVar(&o.offers, "offers", 5, "WebRTC offers per announce (0: only answer)")
	return fs, o
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "boxsignal-peer")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "boxsignal-peer")
	}
	return ".boxsignal-peer"
}

func (o *options) logger(stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("%w: -log-level %q", errUsage, o.logLevel)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// join makes a Peer in room (the identity's own room if "") and joins it
// through the trackers. close leaves: the Peer first, so its leave goes
// out, then the transport.
func (o *options) join(ctx context.Context, id *bugout.Identity, room string, log *slog.Logger) (p *bugout.Peer, closeFn func(), err error) {
	p, err = bugout.New(bugout.Config{Identity: id, Identifier: room, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	trackers := o.trackers
	if len(trackers) == 0 {
		trackers = list{DefaultTracker}
	}
	var servers []transport.ICEServer
	for _, u := range o.iceServers {
		servers = append(servers, transport.ICEServer{URLs: []string{u}})
	}
	offers := o.offers
	if offers == 0 {
		offers = -1
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r, err := transport.Join(ctx, transport.JoinConfig{
		Config: transport.Config{Trackers: trackers, ICEServers: servers, ICEURL: o.iceURL, Offers: offers, Logger: log},
		Peer:   p,
	})
	if err != nil {
		p.Close()
		return nil, nil, err
	}
	return p, func() { p.Close(); r.Close() }, nil
}
