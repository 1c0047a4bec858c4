package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// allResult says what the whole run wrote and how long each step took.
type allResult struct {
	Load    string             `json:"load"`
	Command string             `json:"command"`
	Files   []string           `json:"files"`
	Seconds map[string]float64 `json:"seconds"` // per step
	Total   float64            `json:"total_seconds"`
}

// runAll measures everything the benchmarks page shows and rewrites it:
// the tracker and idle comparison against bittorrent-tracker, STUN and TURN
// against coturn, the tracker's micro-benchmarks, the federation's (dht)
// benchmarks, then the plots and the
// page's generated sections. It needs root (the STUN/TURN namespace), iproute2,
// coturn and node with testdata/clients installed, and checks all of that
// before it starts.
func runAll(ctx context.Context, args []string) (*allResult, error) {
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	out := fs.String("out", "docs/bench", "directory for the JSON results and the plots")
	doc := fs.String("doc", "docs/benchmarks.md", "page whose tables to regenerate")
	clients := fs.String("clients", "testdata/clients", "directory of the npm test clients (bittorrent-tracker installed)")
	timeout := fs.Duration("timeout", 20*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var missing []error
	if os.Geteuid() != 0 {
		missing = append(missing, errors.New("root, for the STUN/TURN network namespace (sudo)"))
	}
	for _, tool := range []string{"ip", "turnserver", "node", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Errorf("%s (apt-get install iproute2 coturn nodejs): %w", tool, err))
		}
	}
	if _, err := os.Stat(filepath.Join(*clients, "node_modules", "bittorrent-tracker")); err != nil {
		missing = append(missing, fmt.Errorf("bittorrent-tracker: run bash %s/install.sh", *clients))
	}
	if _, err := os.Stat(*doc); err != nil {
		missing = append(missing, err)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("all needs: %w", errors.Join(missing...))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	res := &allResult{Load: "all", Command: strings.TrimSpace("go run ./loadtest all " + strings.Join(args, " ")), Seconds: map[string]float64{}}
	begin := time.Now()
	step := func(name string, fn func() error) error {
		fmt.Fprintf(os.Stderr, "all: %s\n", name)
		start := time.Now()
		err := fn()
		res.Seconds[name] = time.Since(start).Seconds()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"micro", func() error {
			_, err := runMicro(ctx, []string{"-out", filepath.Join(*out, microJSON)})
			return err
		}},
		{"federation", func() error {
			_, err := runMicro(ctx, []string{"-pkgs", "./dht/", "-count", "3", "-benchtime", "300x", "-out", filepath.Join(*out, federationJSON)})
			return err
		}},
		{"turncompare", func() error {
			_, err := runTURNCompare(ctx, []string{"-out", filepath.Join(*out, turnJSON)})
			return err
		}},
		{"compare", func() error {
			_, err := runCompare(ctx, []string{"-out", filepath.Join(*out, trackerJSON), "-clients", *clients})
			return err
		}},
		{"plot", func() error {
			p, err := runPlot([]string{"-dir", *out})
			if err == nil {
				res.Files = append(res.Files, p.Files...)
			}
			return err
		}},
		{"record", func() error {
			res.Files = append(res.Files, filepath.Join(*out, microJSON), filepath.Join(*out, federationJSON), filepath.Join(*out, turnJSON), filepath.Join(*out, trackerJSON),
				filepath.Join(*out, allJSON), *doc)
			res.Total = time.Since(begin).Seconds()
			return writeJSON(filepath.Join(*out, allJSON), res)
		}},
		{"tables", func() error {
			_, err := runTables([]string{"-dir", *out, "-doc", *doc})
			return err
		}},
	}
	for _, s := range steps {
		if err := step(s.name, s.fn); err != nil {
			return nil, err
		}
	}
	return res, nil
}
