package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// compareResult is the side-by-side run: every load against the reference
// and against signald, each on a fresh process.
type compareResult struct {
	Load      string          `json:"load"`
	Machine   machine         `json:"machine"`
	Reference string          `json:"reference"`
	Runs      []comparedRun   `json:"runs"`
	Sweep     []comparedSweep `json:"sweep"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	Node      string `json:"node"`
}

type comparedRun struct {
	Name      string         `json:"name"`
	Reference any            `json:"reference"`
	Signald   any            `json:"signald"`
	Ratios    map[string]any `json:"ratios"` // reference / signald: > 1 means signald does better
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
	nodeVersion, _ := exec.Command("node", "--version").Output()
	res := &compareResult{Load: "compare", Reference: "bittorrent-tracker 9.19.0 (node " + strings.TrimSpace(string(nodeVersion)) + ")",
		Machine: machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Node: strings.TrimSpace(string(nodeVersion))}}

	starters := map[string]func(context.Context) (*target, error){
		"reference": func(ctx context.Context) (*target, error) { return startReference(ctx, script) },
		"signald":   func(ctx context.Context) (*target, error) { return startSignald(ctx) },
	}
	both := func(name string, run func(context.Context, *target) (any, error)) (*comparedRun, error) {
		r := &comparedRun{Name: name}
		for _, which := range []string{"reference", "signald"} {
			fmt.Fprintf(os.Stderr, "compare: %s on %s\n", name, which)
			t, err := starters[which](ctx)
			if err != nil {
				return nil, err
			}
			v, err := run(ctx, t)
			t.stop()
			if err != nil {
				return nil, fmt.Errorf("%s on %s: %w", name, which, err)
			}
			if which == "reference" {
				r.Reference = v
			} else {
				r.Signald = v
			}
		}
		return r, nil
	}
	tracker := func(o trackerOpts) func(context.Context, *target) (any, error) {
		return func(ctx context.Context, t *target) (any, error) { return trackerLoad(ctx, t, o) }
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
		r, err := both(l.name, tracker(l.o))
		if err != nil {
			return nil, err
		}
		ref, sig := r.Reference.(*trackerResult), r.Signald.(*trackerResult)
		r.Ratios = map[string]any{
			"cpu_per_offer":  ratio(ref.TargetCPUPerOff, sig.TargetCPUPerOff),
			"offers_per_s":   ratio(sig.OffersPerS, ref.OffersPerS),
			"rtt_p99":        ratio(rttOf(ref, "p99"), rttOf(sig, "p99")),
			"rtt_p50":        ratio(rttOf(ref, "p50"), rttOf(sig, "p50")),
			"signald_p99_ms": rttOf(sig, "p99"),
		}
		res.Runs = append(res.Runs, *r)
	}
	idle, err := both(fmt.Sprintf("idle, %d peers", *idlePeers), func(ctx context.Context, t *target) (any, error) {
		return idleLoad(ctx, t, *idlePeers, 100, 5*time.Second, 64)
	})
	if err != nil {
		return nil, err
	}
	idle.Ratios = map[string]any{"rss_per_peer": ratio(idle.Reference.(*idleResult).BytesPerPeer, idle.Signald.(*idleResult).BytesPerPeer)}
	res.Runs = append(res.Runs, *idle)

	for _, f := range strings.Split(*sweep, ",") {
		var rate float64
		if _, err := fmt.Sscan(strings.TrimSpace(f), &rate); err != nil || rate <= 0 {
			continue
		}
		o := with(base, 1000, 100, rate)
		o.duration = min(*dur, 5*time.Second)
		r, err := both(fmt.Sprintf("sweep %g announces/s", rate), tracker(o))
		if err != nil {
			return nil, err
		}
		res.Sweep = append(res.Sweep, comparedSweep{Rate: rate, Reference: r.Reference.(*trackerResult), Signald: r.Signald.(*trackerResult)})
	}
	printCompare(os.Stderr, res)
	if *out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
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

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
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

func printCompare(w io.Writer, r *compareResult) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "\nload\tmetric\t%s\tsignald\tratio\n", "bittorrent-tracker")
	for _, run := range r.Runs {
		switch ref := run.Reference.(type) {
		case *trackerResult:
			sig := run.Signald.(*trackerResult)
			fmt.Fprintf(tw, "%s\toffers relayed/s\t%.0f\t%.0f\t%.2f×\n", run.Name, ref.OffersPerS, sig.OffersPerS, run.Ratios["offers_per_s"])
			fmt.Fprintf(tw, "\tCPU µs per relayed offer\t%.1f\t%.1f\t1/%.2f\n", ref.TargetCPUPerOff, sig.TargetCPUPerOff, run.Ratios["cpu_per_offer"])
			fmt.Fprintf(tw, "\toffer→answer p50 / p99 ms\t%.2f / %.2f\t%.2f / %.2f\t1/%.2f (p99)\n", rttOf(ref, "p50"), rttOf(ref, "p99"), rttOf(sig, "p50"), rttOf(sig, "p99"), run.Ratios["rtt_p99"])
			fmt.Fprintf(tw, "\tgenerator CPU (cores)\t%.2f\t%.2f\t\n", ref.GenCPUShare, sig.GenCPUShare)
		case *idleResult:
			sig := run.Signald.(*idleResult)
			fmt.Fprintf(tw, "%s\tRSS bytes per idle peer\t%.0f\t%.0f\t1/%.2f\n", run.Name, ref.BytesPerPeer, sig.BytesPerPeer, run.Ratios["rss_per_peer"])
		}
	}
	for _, s := range r.Sweep {
		fmt.Fprintf(tw, "sweep %g announces/s\tachieved / p99 ms\t%.0f / %.2f\t%.0f / %.2f\t\n", s.Rate, s.Reference.AnnouncesPerS, rttOf(s.Reference, "p99"), s.Signald.AnnouncesPerS, rttOf(s.Signald, "p99"))
	}
	tw.Flush()
}
