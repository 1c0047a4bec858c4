package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// turnCompareResult is the side-by-side run of the STUN and TURN loads
// against signald and coturn, each started fresh for every run.
type turnCompareResult struct {
	Load     string            `json:"load"`
	Command  string            `json:"command"`
	Machine  machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Runs     []turnRun         `json:"runs"`  // the rounds: STUN, then TURN at the main rate
	Sweep    []turnRun         `json:"sweep"` // TURN at each rate of the sweep, one run each
	Summary  []summaryRow      `json:"summary"`
}

// turnRun is one server's measurements on one fresh process.
type turnRun struct {
	Server string      `json:"server"`
	Round  int         `json:"round"`
	STUN   *stunResult `json:"stun,omitempty"`
	TURN   *turnResult `json:"turn"`
}

// runTURNCompare measures signald and coturn with the same generators:
// rounds of the STUN load followed by the TURN load (the order of the servers
// alternating between rounds), then the TURN load at each rate of a sweep.
// Each run starts its server fresh in one namespace made for the
// comparison, and stops it by PID.
func runTURNCompare(ctx context.Context, args []string) (*turnCompareResult, error) {
	fs := flag.NewFlagSet("turncompare", flag.ContinueOnError)
	rounds := fs.Int("rounds", 3, "rounds; each runs every server once, the order alternating")
	servers := fs.String("servers", "signald,coturn", "servers to measure, comma-separated")
	var t turnOpts
	fs.IntVar(&t.allocations, "allocations", 100, "TURN: allocations (paired)")
	fs.IntVar(&t.size, "size", 100, "TURN: bytes of each relayed packet")
	fs.Float64Var(&t.rate, "rate", 20000, "TURN: packets/s offered by all allocations together")
	fs.DurationVar(&t.duration, "duration", 5*time.Second, "TURN: measured time of a run")
	var s stunOpts
	fs.IntVar(&s.sockets, "sockets", 32, "STUN: sockets, one Binding request in flight on each")
	fs.DurationVar(&s.duration, "stun-duration", 5*time.Second, "STUN: measured time of a run")
	sweep := fs.String("sweep", "1000,5000,10000,20000,30000", "TURN: offered packets/s of the sweep, one run per server each; empty for none")
	signaldBin := fs.String("signald", "", "signald binary (default: built from this checkout)")
	turnserver := fs.String("turnserver", "turnserver", "coturn's turnserver")
	timeout := fs.Duration("timeout", 8*time.Minute, "bound on the whole run")
	out := fs.String("out", "", "also write the JSON here")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	rates, err := parseRates(*sweep)
	if err != nil {
		return nil, err
	}
	if *rounds < 1 || *rounds > 9 || s.sockets < 1 || s.sockets > 1024 || s.duration <= 0 || s.duration > time.Minute {
		return nil, errors.New("want 1 ≤ -rounds ≤ 9, 1 ≤ -sockets ≤ 1024, 0 < -stun-duration ≤ 1m")
	}
	for _, r := range append([]float64{t.rate}, rates...) {
		o := t
		o.rate = r
		if err := o.check(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var specs []serverSpec
	res := &turnCompareResult{Load: "turncompare", Command: strings.TrimSpace("go run ./loadtest turncompare " + strings.Join(args, " ")),
		Machine: machineInfo(), Versions: map[string]string{}}
	for _, name := range strings.Split(*servers, ",") {
		spec, err := lookupServer(ctx, strings.TrimSpace(name), *signaldBin, *turnserver)
		if err != nil {
			return nil, err
		}
		specs = append(specs, spec)
		res.Versions[spec.name] = spec.version
	}

	err = withNetNS(func(ns *netNS) error {
		// one runs a fresh server and, on it, the STUN load (when stun) and
		// the TURN load at rate.
		one := func(spec serverSpec, round int, stun bool, rate float64) (turnRun, error) {
			r := turnRun{Server: spec.name, Round: round}
			srv, err := startNSServer(ns, spec)
			if err != nil {
				return r, err
			}
			defer srv.stop()
			if stun {
				r.STUN = &stunResult{}
				if err := srv.runChild(ctx, r.STUN, "stun", s.args()...); err != nil {
					return r, err
				}
				r.STUN.Server = spec.name
			}
			o := t
			o.rate = rate
			r.TURN = &turnResult{}
			if err := srv.runChild(ctx, r.TURN, "turn", o.args()...); err != nil {
				return r, err
			}
			r.TURN.Server = spec.name
			return r, nil
		}
		for round := 1; round <= *rounds; round++ {
			for _, spec := range alternate(specs, round) {
				fmt.Fprintf(os.Stderr, "turncompare: round %d/%d: %s\n", round, *rounds, spec.name)
				r, err := one(spec, round, true, t.rate)
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", round, spec.name, err)
				}
				res.Runs = append(res.Runs, r)
			}
		}
		for i, rate := range rates {
			for _, spec := range alternate(specs, i) {
				fmt.Fprintf(os.Stderr, "turncompare: sweep %g packets/s: %s\n", rate, spec.name)
				r, err := one(spec, 0, false, rate)
				if err != nil {
					return fmt.Errorf("sweep %g packets/s, %s: %w", rate, spec.name, err)
				}
				res.Sweep = append(res.Sweep, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Summary = summarize(res.Runs)
	fmt.Fprint(os.Stderr, "\n"+turnTable(res)+"\n"+turnSweepTable(res))
	if *out != "" {
		if err := writeJSON(*out, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// alternate returns specs, reversed in every other round.
func alternate(specs []serverSpec, round int) []serverSpec {
	order := slices.Clone(specs)
	if round%2 == 0 {
		slices.Reverse(order)
	}
	return order
}

func parseRates(list string) ([]float64, error) {
	var rates []float64
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.ParseFloat(f, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("rate %q: want a positive number", f)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// stat is the median and range of one metric over the rounds.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// summaryRow is one metric for every server, with signald's median over
// coturn's.
type summaryRow struct {
	Metric string          `json:"metric"`
	Unit   string          `json:"unit"`
	By     map[string]stat `json:"by"`
	Ratio  float64         `json:"signald_over_coturn,omitempty"`
}

type turnMetric struct {
	name, unit string
	get        func(turnRun) (float64, bool)
}

func fromTURN(f func(*turnResult) float64) func(turnRun) (float64, bool) {
	return func(r turnRun) (float64, bool) {
		if r.TURN == nil {
			return 0, false
		}
		return f(r.TURN), true
	}
}

func fromSTUN(f func(*stunResult) float64) func(turnRun) (float64, bool) {
	return func(r turnRun) (float64, bool) {
		if r.STUN == nil {
			return 0, false
		}
		return f(r.STUN), true
	}
}

// behindPct is the share of the offered packets that the generator did not
// send in time.
func behindPct(r *turnResult) float64 {
	if r.Sent+r.Behind == 0 {
		return 0
	}
	return 100 * float64(r.Behind) / float64(r.Sent+r.Behind)
}

func ms(m map[string]any, q string) float64 {
	v, _ := m[q].(float64)
	return v
}

// turnMetrics are the rows of the summary, in order.
var turnMetrics = []turnMetric{
	{"TURN: relayed packets/s", "pkt/s", fromTURN(func(r *turnResult) float64 { return r.PacketsPerS })},
	{"TURN: loss", "%", fromTURN(func(r *turnResult) float64 { return r.LossPct })},
	{"TURN: not sent, generator behind", "%", fromTURN(behindPct)},
	{"TURN: latency p50", "ms", fromTURN(func(r *turnResult) float64 { return ms(r.LatencyMs, "p50") })},
	{"TURN: latency p99", "ms", fromTURN(func(r *turnResult) float64 { return ms(r.LatencyMs, "p99") })},
	{"TURN: latency max", "ms", fromTURN(func(r *turnResult) float64 { return ms(r.LatencyMs, "max") })},
	{"TURN: server CPU per relayed packet", "µs", fromTURN(func(r *turnResult) float64 { return r.TargetCPUPerPkt })},
	{"TURN: server CPU", "cores", fromTURN(func(r *turnResult) float64 { return r.TargetCores })},
	{"TURN: server CPU in the kernel", "%", fromTURN(func(r *turnResult) float64 { return 100 * r.TargetSysShare })},
	{"TURN: generator CPU", "cores", fromTURN(func(r *turnResult) float64 { return r.GenCPUShare })},
	{"STUN: Bindings/s", "req/s", fromSTUN(func(r *stunResult) float64 { return r.BindingsPerS })},
	{"STUN: timeouts", "%", fromSTUN(func(r *stunResult) float64 { return r.TimeoutPct })},
	{"STUN: latency p50", "ms", fromSTUN(func(r *stunResult) float64 { return ms(r.RTTms, "p50") })},
	{"STUN: latency p99", "ms", fromSTUN(func(r *stunResult) float64 { return ms(r.RTTms, "p99") })},
	{"STUN: latency max", "ms", fromSTUN(func(r *stunResult) float64 { return ms(r.RTTms, "max") })},
	{"STUN: server CPU per Binding", "µs", fromSTUN(func(r *stunResult) float64 { return r.TargetCPUPerBind })},
	{"STUN: server CPU", "cores", fromSTUN(func(r *stunResult) float64 { return r.TargetCores })},
	{"STUN: server CPU in the kernel", "%", fromSTUN(func(r *stunResult) float64 { return 100 * r.TargetSysShare })},
	{"STUN: generator CPU", "cores", fromSTUN(func(r *stunResult) float64 { return r.GenCPUShare })},
}

func summarize(runs []turnRun) []summaryRow {
	var servers []string
	for _, r := range runs {
		if !slices.Contains(servers, r.Server) {
			servers = append(servers, r.Server)
		}
	}
	var rows []summaryRow
	for _, m := range turnMetrics {
		row := summaryRow{Metric: m.name, Unit: m.unit, By: map[string]stat{}}
		for _, name := range servers {
			var vs []float64
			for _, r := range runs {
				if v, ok := m.get(r); ok && r.Server == name {
					vs = append(vs, v)
				}
			}
			if len(vs) > 0 {
				row.By[name] = statOf(vs)
			}
		}
		s, ok1 := row.By["signald"]
		c, ok2 := row.By["coturn"]
		if ok1 && ok2 && c.Median != 0 {
			row.Ratio = s.Median / c.Median
		}
		rows = append(rows, row)
	}
	return rows
}

func statOf(vs []float64) stat {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return stat{Median: med, Min: s[0], Max: s[n-1]}
}
