package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// compareResult is the side-by-side run: every load against the reference
// and against signald, each on a fresh process.
type compareResult struct {
	Load      string          `json:"load"`
	Command   string          `json:"command"`
	Machine   machine         `json:"machine"`
	Reference string          `json:"reference"`
	Runs      []comparedRun   `json:"runs"`
	Idle      *comparedIdle   `json:"idle"`
	Sweep     []comparedSweep `json:"sweep"`
}

type comparedRun struct {
	Name      string         `json:"name"`
	Reference *trackerResult `json:"reference"`
	Signald   *trackerResult `json:"signald"`
}

type comparedIdle struct {
	Name      string      `json:"name"`
	Reference *idleResult `json:"reference"`
	Signald   *idleResult `json:"signald"`
}

type comparedSweep struct {
	Rate      float64        `json:"offered_announces_per_s"`
	Reference *trackerResult `json:"reference"`
	Signald   *trackerResult `json:"signald"`
}

// runCompare runs the same loads against bittorrent-tracker 9.19 (the
// pinned npm package in testdata/clients) and signald, side by side.
func runCompare(ctx context.Context, args []string) (*compareResult, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	dur := fs.Duration("duration", 8*time.Second, "measured time of each tracker run")
	idlePeers := fs.Int("idle-peers", 15000, "peers of the idle run")
	sweep := fs.String("sweep", "250,500,1000,2000,4000,8000", "offered announces/s of the latency sweep (1000 peers); empty for none")
	clients := fs.String("clients", "testdata/clients", "directory of the npm test clients (bittorrent-tracker installed)")
	out := fs.String("out", "", "also write the JSON here")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	script, err := filepath.Abs(filepath.Join(*clients, "reference-tracker.js"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(*clients, "node_modules", "bittorrent-tracker")); err != nil {
		return nil, fmt.Errorf("bittorrent-tracker is not installed: run bash %s/install.sh", *clients)
	}
	m := machineInfo()
	res := &compareResult{Load: "compare", Command: strings.TrimSpace("go run ./loadtest compare " + strings.Join(args, " ")),
		Machine: m, Reference: "bittorrent-tracker 9.19.0 (node " + m.Node + ")"}

	starters := map[string]func(context.Context) (*target, error){
		"reference": func(ctx context.Context) (*target, error) { return startReference(ctx, script) },
		"signald":   func(ctx context.Context) (*target, error) { return startSignald(ctx) },
	}
	// both runs the load against a fresh reference, then a fresh signald.
	both := func(name string, run func(context.Context, *target) (any, error)) (ref, sig any, err error) {
		for _, which := range []string{"reference", "signald"} {
			fmt.Fprintf(os.Stderr, "compare: %s on %s\n", name, which)
			t, err := starters[which](ctx)
			if err != nil {
				return nil, nil, err
			}
			v, err := run(ctx, t)
			t.stop()
			if err != nil {
				return nil, nil, fmt.Errorf("%s on %s: %w", name, which, err)
			}
			if which == "reference" {
				ref = v
			} else {
				sig = v
			}
		}
		return ref, sig, nil
	}
	tracker := func(name string, o trackerOpts) (ref, sig *trackerResult, err error) {
		r, s, err := both(name, func(ctx context.Context, t *target) (any, error) { return trackerLoad(ctx, t, o) })
		if err != nil {
			return nil, nil, err
		}
		return r.(*trackerResult), s.(*trackerResult), nil
	}
	base := trackerOpts{offers: 5, sdpBytes: 600, duration: *dur}
	loads := []struct {
		name string
		o    trackerOpts
	}{
		{"closed loop, 200 peers, 20 swarms", with(base, 200, 20, 0)},
		{"closed loop, 1000 peers, 100 swarms", with(base, 1000, 100, 0)},
		{"fixed 2000 announces/s, 1000 peers, 100 swarms", with(base, 1000, 100, 2000)},
	}
	for _, l := range loads {
		ref, sig, err := tracker(l.name, l.o)
		if err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, comparedRun{Name: l.name, Reference: ref, Signald: sig})
	}
	name := fmt.Sprintf("idle, %d peers", *idlePeers)
	ref, sig, err := both(name, func(ctx context.Context, t *target) (any, error) {
		return idleLoad(ctx, t, *idlePeers, 100, 5*time.Second, 64)
	})
	if err != nil {
		return nil, err
	}
	res.Idle = &comparedIdle{Name: name, Reference: ref.(*idleResult), Signald: sig.(*idleResult)}

	for _, f := range strings.Split(*sweep, ",") {
		var rate float64
		if _, err := fmt.Sscan(strings.TrimSpace(f), &rate); err != nil || rate <= 0 {
			continue
		}
		o := with(base, 1000, 100, rate)
		o.duration = min(*dur, 5*time.Second)
		ref, sig, err := tracker(fmt.Sprintf("sweep %g announces/s", rate), o)
		if err != nil {
			return nil, err
		}
		res.Sweep = append(res.Sweep, comparedSweep{Rate: rate, Reference: ref, Signald: sig})
	}
	fmt.Fprint(os.Stderr, "\n"+trackerTable(res)+"\n"+trackerSweepTable(res))
	if *out != "" {
		if err := writeJSON(*out, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func with(o trackerOpts, peers, swarms int, rate float64) trackerOpts {
	o.peers, o.swarms, o.rate = peers, swarms, rate
	o.timeout = 2 * time.Minute
	return o
}

func rttOf(r *trackerResult, q string) float64 {
	v, _ := r.RTTms[q].(float64)
	return v
}

// startReference starts bittorrent-tracker's own server on a free loopback
// port, as production-like as it comes (no per-peer logging).
func startReference(ctx context.Context, script string) (*target, error) {
	return startTarget(ctx, "reference tracker", func(addr string) *exec.Cmd {
		cmd := exec.Command("node", script, "-addr", addr)
		cmd.Env = append(os.Environ(), "NODE_ENV=production")
		return cmd
	})
}
