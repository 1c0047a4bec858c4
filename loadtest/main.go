// Command loadtest drives a tracker from outside, over real WebSockets on
// loopback, and reports what it costs the tracker. It is a black-box client:
// it imports only the wire types.
//
//	go run ./loadtest idle -n 10000            # RSS per idle announced peer of a fresh signald
//	go run ./loadtest idle -target ws://127.0.0.1:8000 -pid 1234 -n 10000
//	go run ./loadtest tracker -peers 1000 -swarms 100           # closed loop, 5 offers per announce
//	go run ./loadtest tracker -peers 1000 -rate 2000            # a fixed 2000 announces/s
//	go run ./loadtest compare -out docs/bench/tracker-compare.json  # side by side with bittorrent-tracker 9.19
//	go run ./loadtest plot                                      # docs/bench/tracker-sweep.svg from that JSON
//
// Every run is bounded in count and time, sends traffic only to 127.0.0.1 or
// ::1, stops by itself, and prints one JSON object on stdout.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtest idle|tracker|compare|plot [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer removeBuilt()
	var (
		res any
		err error
	)
	switch os.Args[1] {
	case "idle":
		res, err = runIdle(ctx, os.Args[2:])
	case "tracker":
		res, err = runTracker(ctx, os.Args[2:])
	case "compare":
		res, err = runCompare(ctx, os.Args[2:])
	case "plot":
		res, err = runPlot(os.Args[2:])
	default:
		err = fmt.Errorf("unknown load %q (want idle, tracker, compare or plot)", os.Args[1])
	}
	if err != nil {
		removeBuilt()
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(res)
}
