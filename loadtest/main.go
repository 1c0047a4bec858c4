// Command loadtest drives Box Signal's servers from outside and reports what
// the load costs them: the tracker over real WebSockets, STUN and TURN over
// UDP. It is a black-box client: it imports only the tracker's wire types,
// and pion's STUN and TURN clients.
//
//	go run ./loadtest idle -n 10000            # RSS per idle announced peer of a fresh signald
//	go run ./loadtest idle -target ws://127.0.0.1:8000 -pid 1234 -n 10000
//	go run ./loadtest tracker -peers 1000 -swarms 100           # closed loop, 5 offers per announce
//	go run ./loadtest tracker -peers 1000 -rate 2000            # a fixed 2000 announces/s
//	go run ./loadtest compare -out docs/bench/tracker-compare.json  # side by side with bittorrent-tracker 9.19
//	sudo go run ./loadtest stun                                 # STUN Bindings/s of a fresh signald (-server coturn)
//	sudo go run ./loadtest turn -allocations 100 -rate 20000    # relayed packets through a fresh signald
//	go run ./loadtest turn -target 127.0.0.1:3478 -pid 1234 -secret S   # a running server, loopback relays
//	sudo go run ./loadtest turncompare -out docs/bench/turn-compare.json # STUN and TURN side by side with coturn
//	go run ./loadtest micro -out docs/bench/micro.json          # the tracker's Go benchmarks, 3 runs each
//	go run ./loadtest plot                                      # docs/bench/*.svg from the JSON
//	go run ./loadtest tables                                    # docs/benchmarks.md's tables from the JSON
//	sudo go run ./loadtest all                                  # all of the above into docs/ (make bench)
//
// Every run is bounded in count and time, sends traffic only to 127.0.0.1 or
// ::1 or inside a network namespace it makes (stun, turn and turncompare
// without -target, as root), stops by itself, and prints one JSON object on
// stdout.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	removeBuilt()
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		os.Exit(1)
	}
}

// commands are the subcommands; each parses its own flags.
var commands = map[string]func(context.Context, []string) (any, error){
	"idle":        func(ctx context.Context, a []string) (any, error) { return runIdle(ctx, a) },
	"tracker":     func(ctx context.Context, a []string) (any, error) { return runTracker(ctx, a) },
	"compare":     func(ctx context.Context, a []string) (any, error) { return runCompare(ctx, a) },
	"stun":        func(ctx context.Context, a []string) (any, error) { return runSTUN(ctx, a) },
	"turn":        func(ctx context.Context, a []string) (any, error) { return runTURN(ctx, a) },
	"turncompare": func(ctx context.Context, a []string) (any, error) { return runTURNCompare(ctx, a) },
	"micro":       func(ctx context.Context, a []string) (any, error) { return runMicro(ctx, a) },
	"plot":        func(_ context.Context, a []string) (any, error) { return runPlot(a) },
	"tables":      func(_ context.Context, a []string) (any, error) { return runTables(a) },
	"all":         func(ctx context.Context, a []string) (any, error) { return runAll(ctx, a) },
}

const usage = "usage: loadtest idle|tracker|compare|stun|turn|turncompare|micro|plot|tables|all [flags]"

// run runs the subcommand args[0] and prints its result as JSON on stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) < 1 {
		return fmt.Errorf("%s", usage)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown load %q; %s", args[0], usage)
	}
	res, err := cmd(ctx, args[1:])
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
