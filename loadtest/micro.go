package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// microResult is the tracker's Go micro-benchmarks, run count times.
type microResult struct {
	Load       string       `json:"load"`
	Command    string       `json:"command"`
	Count      int          `json:"count"`
	Machine    machine      `json:"machine"`
	Benchmarks []microBench `json:"benchmarks"`
}

// microBench is one benchmark: each run's value per unit ("ns/op", "B/op",
// "offers/s", …).
type microBench struct {
	Name string               `json:"name"`
	Runs []map[string]float64 `json:"runs"`
}

// units are the units of the benchmark's first run: go test's own first,
// then the ones the benchmark reports itself, sorted.
func (b microBench) units() []string {
	if len(b.Runs) == 0 {
		return nil
	}
	known := []string{"ns/op", "MB/s", "B/op", "allocs/op"}
	var us, rest []string
	for _, u := range known {
		if _, ok := b.Runs[0][u]; ok {
			us = append(us, u)
		}
	}
	for u := range b.Runs[0] {
		if !slices.Contains(known, u) {
			rest = append(rest, u)
		}
	}
	slices.Sort(rest)
	return append(us, rest...)
}

// runMicro runs the Go benchmarks of the tracker packages and keeps every
// run's figures.
func runMicro(ctx context.Context, args []string) (*microResult, error) {
	fs := flag.NewFlagSet("micro", flag.ContinueOnError)
	count := fs.Int("count", 3, "runs of each benchmark")
	pkgs := fs.String("pkgs", "./signal/...", "packages, space-separated")
	benchtime := fs.String("benchtime", "", "go test -benchtime (default: go test's own, 1s)")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole run")
	out := fs.String("out", "", "also write the JSON here")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *count < 1 || *count > 10 {
		return nil, fmt.Errorf("-count %d: want 1..10", *count)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	goArgs := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(*count)}
	if *benchtime != "" {
		goArgs = append(goArgs, "-benchtime", *benchtime)
	}
	goArgs = append(goArgs, strings.Fields(*pkgs)...)
	cmd := exec.CommandContext(ctx, "go", goArgs...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	fmt.Fprintf(os.Stderr, "micro: go %s\n", strings.Join(goArgs, " "))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(goArgs, " "), err, stdout.String())
	}
	res := &microResult{Load: "micro", Command: "go " + strings.Join(goArgs, " "), Count: *count, Machine: machineInfo(),
		Benchmarks: parseBench(stdout.String())}
	if len(res.Benchmarks) == 0 {
		return nil, fmt.Errorf("go %s printed no benchmark", strings.Join(goArgs, " "))
	}
	if *out != "" {
		if err := writeJSON(*out, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// parseBench reads go test -bench output: "BenchmarkName-2  N  v unit  v unit…".
func parseBench(out string) []microBench {
	var bs []microBench
	index := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		run := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				run[f[i+1]] = v
			}
		}
		k, ok := index[name]
		if !ok {
			k = len(bs)
			index[name] = k
			bs = append(bs, microBench{Name: name})
		}
		bs[k].Runs = append(bs[k].Runs, run)
	}
	return bs
}
