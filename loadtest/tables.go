package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The results that the docs show, as files in the bench directory.
const (
	trackerJSON = "tracker-compare.json"
	turnJSON    = "turn-compare.json"
	microJSON   = "micro.json"
	// federationJSON is the dht package's benchmarks: a room lookup among
	// 50 Boxes, and an offer relay through one Box against two.
	federationJSON = "federation.json"
	allJSON        = "all.json"
)

// benchResults are the JSON files of the bench directory; a nil field was
// not measured yet.
type benchResults struct {
	tracker *compareResult
	turn    *turnCompareResult
	micro   *microResult
	fed     *microResult
	all     *allResult
}

func loadResults(dir string) (*benchResults, error) {
	r := &benchResults{}
	for name, v := range map[string]any{trackerJSON: &r.tracker, turnJSON: &r.turn, microJSON: &r.micro, federationJSON: &r.fed, allJSON: &r.all} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return r, nil
}

type tablesResult struct {
	Load     string   `json:"load"`
	Doc      string   `json:"doc"`
	Sections []string `json:"sections"`
	Changed  bool     `json:"changed"`
}

// runTables rewrites the generated sections of the benchmarks page from the
// JSON results: everything between <!-- BEGIN loadtest tables NAME --> and
// <!-- END loadtest tables NAME -->. With -check it changes nothing and
// fails when the page is not what the JSON gives.
func runTables(args []string) (*tablesResult, error) {
	fs := flag.NewFlagSet("tables", flag.ContinueOnError)
	dir := fs.String("dir", "docs/bench", "directory of the JSON results")
	doc := fs.String("doc", "docs/benchmarks.md", "page whose generated sections to rewrite")
	check := fs.Bool("check", false, "only check that the page is up to date")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	results, err := loadResults(*dir)
	if err != nil {
		return nil, err
	}
	old, err := os.ReadFile(*doc)
	if err != nil {
		return nil, err
	}
	sections := results.sections()
	page, names, err := fillSections(string(old), sections)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", *doc, err)
	}
	res := &tablesResult{Load: "tables", Doc: *doc, Sections: names, Changed: page != string(old)}
	if *check {
		if res.Changed {
			return nil, fmt.Errorf("%s is not what %s gives: run go run ./loadtest tables", *doc, *dir)
		}
		return res, nil
	}
	if res.Changed {
		return res, os.WriteFile(*doc, []byte(page), 0o644)
	}
	return res, nil
}

const (
	beginMark = "<!-- BEGIN loadtest tables "
	endMark   = "<!-- END loadtest tables "
	markClose = " -->"
)

// fillSections replaces the body of every generated section of page by its
// text in sections. Every section the page marks must exist.
func fillSections(page string, sections map[string]string) (string, []string, error) {
	var out strings.Builder
	var names []string
	rest := page
	for {
		i := strings.Index(rest, beginMark)
		if i < 0 {
			out.WriteString(rest)
			return out.String(), names, nil
		}
		j := strings.Index(rest[i:], markClose)
		if j < 0 {
			return "", nil, errors.New("unterminated BEGIN marker")
		}
		name := rest[i+len(beginMark) : i+j]
		body, ok := sections[name]
		if !ok {
			return "", nil, fmt.Errorf("unknown generated section %q", name)
		}
		end := endMark + name + markClose
		k := strings.Index(rest[i:], end)
		if k < 0 {
			return "", nil, fmt.Errorf("section %q has no %s", name, end)
		}
		out.WriteString(rest[:i+j+len(markClose)])
		out.WriteString("\n" + body)
		out.WriteString(end)
		rest = rest[i+k+len(end):]
		names = append(names, name)
	}
}

const toBeMeasured = "_To be measured: `sudo go run ./loadtest all` writes this section._\n"

// sections renders every generated section of the page.
func (r *benchResults) sections() map[string]string {
	s := map[string]string{}
	for _, name := range []string{"machine", "headline", "tracker", "tracker-sweep", "micro", "turn", "turn-sweep", "federation"} {
		s[name] = toBeMeasured
	}
	s["machine"] = r.machineText()
	s["headline"] = r.headline()
	if r.tracker != nil {
		s["tracker"] = trackerTable(r.tracker)
		s["tracker-sweep"] = trackerSweepTable(r.tracker)
	}
	if r.micro != nil {
		s["micro"] = microTable(r.micro)
	}
	if r.fed != nil {
		s["federation"] = federationTable(r.fed)
	}
	if r.turn != nil {
		s["turn"] = turnTable(r.turn)
		s["turn-sweep"] = turnSweepTable(r.turn)
	}
	return s
}

func (r *benchResults) machineText() string {
	var m *machine
	switch {
	case r.tracker != nil:
		m = &r.tracker.Machine
	case r.turn != nil:
		m = &r.turn.Machine
	case r.micro != nil:
		m = &r.micro.Machine
	default:
		return toBeMeasured
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- %d CPUs (%s), %.0f GiB, Linux %s, %s\n", m.CPUs, m.Model, float64(m.Memory)/(1<<30), m.Kernel, m.Go)
	fmt.Fprintf(&b, "- checkout measured: %s\n", m.Commit)
	if a := r.all; a != nil {
		fmt.Fprintf(&b, "- `%s` took %.1f minutes: micro %.1f, turncompare %.1f, compare %.1f\n",
			a.Command, a.Total/60, a.Seconds["micro"]/60, a.Seconds["turncompare"]/60, a.Seconds["compare"]/60)
	}
	if r.tracker != nil {
		fmt.Fprintf(&b, "- tracker reference: %s\n", r.tracker.Reference)
	}
	if r.turn != nil {
		if v, ok := r.turn.Versions["coturn"]; ok {
			fmt.Fprintf(&b, "- TURN reference: %s (the Debian package)\n", v)
		}
	}
	return b.String()
}

// headline is the few ratios the issue asks about, each from the tables.
func (r *benchResults) headline() string {
	var b strings.Builder
	if t := r.tracker; t != nil {
		for _, run := range t.Runs {
			ref, sig := run.Reference, run.Signald
			fmt.Fprintf(&b, "- Tracker, %s: signald relays %s offers/s (bittorrent-tracker %s) at %s of bittorrent-tracker's CPU per relayed offer; offer→answer p99 %s ms (bittorrent-tracker %s ms).\n",
				run.Name, num(sig.OffersPerS), num(ref.OffersPerS), lessText(ref.TargetCPUPerOff, sig.TargetCPUPerOff), num(rttOf(sig, "p99")), num(rttOf(ref, "p99")))
		}
		if t.Idle != nil {
			fmt.Fprintf(&b, "- Tracker, %s: %s bytes of RSS per idle announced peer against bittorrent-tracker's %s (%s).\n",
				t.Idle.Name, num(t.Idle.Signald.BytesPerPeer), num(t.Idle.Reference.BytesPerPeer), lessText(t.Idle.Reference.BytesPerPeer, t.Idle.Signald.BytesPerPeer))
		}
	}
	if t := r.turn; t != nil {
		for _, row := range t.Summary {
			switch row.Metric {
			case "TURN: server CPU per relayed packet", "STUN: server CPU per Binding", "TURN: relayed packets/s", "STUN: Bindings/s":
				s, ok1 := row.By["signald"]
				c, ok2 := row.By["coturn"]
				if ok1 && ok2 {
					fmt.Fprintf(&b, "- %s: signald %s %s, coturn %s %s (signald/coturn %.2f).\n", row.Metric, num(s.Median), row.Unit, num(c.Median), row.Unit, row.Ratio)
				}
			}
		}
	}
	if b.Len() == 0 {
		return toBeMeasured
	}
	return b.String()
}

// trackerTable is every tracker load and the idle load, side by side.
func trackerTable(r *compareResult) string {
	var b strings.Builder
	b.WriteString("| load | metric | bittorrent-tracker | signald | signald vs bittorrent-tracker |\n|---|---|---:|---:|---:|\n")
	for _, run := range r.Runs {
		ref, sig := run.Reference, run.Signald
		fmt.Fprintf(&b, "| %s | offers relayed/s | %s | %s | %s |\n", run.Name, num(ref.OffersPerS), num(sig.OffersPerS), moreText(ref.OffersPerS, sig.OffersPerS))
		fmt.Fprintf(&b, "| | server CPU µs per relayed offer | %s | %s | %s |\n", num(ref.TargetCPUPerOff), num(sig.TargetCPUPerOff), lessText(ref.TargetCPUPerOff, sig.TargetCPUPerOff))
		fmt.Fprintf(&b, "| | offer→answer p50 / p99 ms | %s / %s | %s / %s | %s (p99) |\n",
			num(rttOf(ref, "p50")), num(rttOf(ref, "p99")), num(rttOf(sig, "p50")), num(rttOf(sig, "p99")), lessText(rttOf(ref, "p99"), rttOf(sig, "p99")))
		fmt.Fprintf(&b, "| | server CPU in the kernel, %% | %s | %s | |\n", num(100*ref.TargetSysShare), num(100*sig.TargetSysShare))
		fmt.Fprintf(&b, "| | generator CPU, cores | %s | %s | |\n", num(ref.GenCPUShare), num(sig.GenCPUShare))
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(&b, "| %s | RSS bytes per idle announced peer | %s | %s | %s |\n", i.Name, num(i.Reference.BytesPerPeer), num(i.Signald.BytesPerPeer), lessText(i.Reference.BytesPerPeer, i.Signald.BytesPerPeer))
	}
	return b.String()
}

// trackerSweepTable is the latency sweep: a fixed offered rate each.
func trackerSweepTable(r *compareResult) string {
	if len(r.Sweep) == 0 {
		return toBeMeasured
	}
	var b strings.Builder
	b.WriteString("| offered announces/s |")
	for _, s := range r.Sweep {
		b.WriteString(" " + num(s.Rate) + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(r.Sweep)) + "\n")
	rows := []struct {
		name string
		get  func(comparedSweep) float64
	}{
		{"bittorrent-tracker offers relayed/s", func(s comparedSweep) float64 { return s.Reference.OffersPerS }},
		{"signald offers relayed/s", func(s comparedSweep) float64 { return s.Signald.OffersPerS }},
		{"bittorrent-tracker p99 ms", func(s comparedSweep) float64 { return rttOf(s.Reference, "p99") }},
		{"signald p99 ms", func(s comparedSweep) float64 { return rttOf(s.Signald, "p99") }},
	}
	for _, row := range rows {
		b.WriteString("| " + row.name + " |")
		for _, s := range r.Sweep {
			b.WriteString(" " + num(row.get(s)) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// turnTable is the summary of the rounds: the median and range of each
// metric per server.
func turnTable(r *turnCompareResult) string {
	var b strings.Builder
	if len(r.Runs) > 0 {
		rounds := 0
		for _, run := range r.Runs {
			rounds = max(rounds, run.Round)
		}
		t, s := r.Runs[0].TURN, r.Runs[0].STUN
		fmt.Fprintf(&b, "TURN: %d allocations in pairs, %d-byte packets, %s packets/s offered in all, %s s measured. ",
			t.Allocations, t.PacketBytes, num(t.OfferedPerS), num(t.Seconds))
		if s != nil {
			fmt.Fprintf(&b, "STUN: %d sockets, one Binding request in flight on each, %s s measured. ", s.Sockets, num(s.Seconds))
		}
		fmt.Fprintf(&b, "%d round(s); each cell is the median [min–max] of the rounds.\n\n", rounds)
	}
	servers := serversOf(r)
	b.WriteString("| metric | unit |")
	for _, s := range servers {
		b.WriteString(" " + s + " |")
	}
	ratio := slices.Contains(servers, "signald") && slices.Contains(servers, "coturn")
	if ratio {
		b.WriteString(" signald/coturn |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---:|", len(servers)))
	if ratio {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, row := range r.Summary {
		bold := strings.Contains(row.Metric, "CPU per")
		fmt.Fprintf(&b, "| %s | %s |", emph(row.Metric, bold), row.Unit)
		for _, s := range servers {
			st, ok := row.By[s]
			if !ok {
				b.WriteString(" – |")
				continue
			}
			cell := num(st.Median)
			if st.Min != st.Max {
				cell += " [" + num(st.Min) + "–" + num(st.Max) + "]"
			}
			b.WriteString(" " + emph(cell, bold) + " |")
		}
		if ratio {
			if row.Ratio != 0 {
				b.WriteString(" " + emph(fmt.Sprintf("%.2f", row.Ratio), bold) + " |")
			} else {
				b.WriteString(" – |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func emph(s string, bold bool) string {
	if bold {
		return "**" + s + "**"
	}
	return s
}

func serversOf(r *turnCompareResult) []string {
	var servers []string
	for _, run := range append(slices.Clone(r.Runs), r.Sweep...) {
		if !slices.Contains(servers, run.Server) {
			servers = append(servers, run.Server)
		}
	}
	slices.SortFunc(servers, func(a, b string) int { // signald first
		return strings.Compare(strings.Replace(a, "signald", "0", 1), strings.Replace(b, "signald", "0", 1))
	})
	return servers
}

// turnSweepTable is the TURN load at each offered rate, one run per server.
func turnSweepTable(r *turnCompareResult) string {
	if len(r.Sweep) == 0 {
		return toBeMeasured
	}
	var rates []float64
	for _, run := range r.Sweep {
		if !slices.Contains(rates, run.TURN.OfferedPerS) {
			rates = append(rates, run.TURN.OfferedPerS)
		}
	}
	var b strings.Builder
	b.WriteString("| offered packets/s |")
	for _, rate := range rates {
		b.WriteString(" " + num(rate) + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(rates)) + "\n")
	rows := []struct {
		name string
		get  func(*turnResult) float64
	}{
		{"relayed packets/s", func(t *turnResult) float64 { return t.PacketsPerS }},
		{"server CPU µs per relayed packet", func(t *turnResult) float64 { return t.TargetCPUPerPkt }},
		{"loss %", func(t *turnResult) float64 { return t.LossPct }},
		{"not sent (generator behind) %", behindPct},
		{"latency p99 ms", func(t *turnResult) float64 { return ms(t.LatencyMs, "p99") }},
		{"generator CPU, cores", func(t *turnResult) float64 { return t.GenCPUShare }},
	}
	for _, row := range rows {
		for _, server := range serversOf(r) {
			b.WriteString("| " + server + " " + row.name + " |")
			for _, rate := range rates {
				cell := "–"
				for _, run := range r.Sweep {
					if run.Server == server && run.TURN.OfferedPerS == rate {
						cell = num(row.get(run.TURN))
					}
				}
				b.WriteString(" " + cell + " |")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// microTable is each benchmark's range over its runs.
func microTable(r *microResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`%s`, %d runs each; each cell is the range over the runs.\n\n", r.Command, r.Count)
	b.WriteString("| benchmark | ns/op | B/op | allocs/op | other |\n|---|---:|---:|---:|---|\n")
	for _, bm := range r.Benchmarks {
		var other []string
		for _, unit := range bm.units() {
			switch unit {
			case "ns/op", "B/op", "allocs/op":
			default:
				other = append(other, spread(bm, unit)+" "+unit)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", bm.Name, spread(bm, "ns/op"), spread(bm, "B/op"), spread(bm, "allocs/op"), strings.Join(other, ", "))
	}
	return b.String()
}

// federationTable shows what federation adds to an offer relay (the median
// round trip through two Boxes less the one through one) and the DHT room
// lookup among 50 Boxes, each as the range over the runs.
func federationTable(r *microResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`%s`, %d runs each; each cell is the range over the runs.\n\n", r.Command, r.Count)
	var local, fed *microBench
	for i := range r.Benchmarks {
		switch r.Benchmarks[i].Name {
		case "OfferRelay/local":
			local = &r.Benchmarks[i]
		case "OfferRelay/federated":
			fed = &r.Benchmarks[i]
		}
	}
	if local != nil && fed != nil {
		b.WriteString("| offer→answer round trip, µs on 127.0.0.1 | through one Box | through two friends' Boxes (libp2p over TCP) | added by federation |\n|---|---:|---:|---:|\n")
		med := func(bm *microBench) float64 {
			var v []float64
			for _, run := range bm.Runs {
				v = append(v, run["ns/op"]/1e3)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		fmt.Fprintf(&b, "| median of the runs (range) | %s (%s) | %s (%s) | %s |\n\n",
			num(med(local)), spreadScaled(*local, "ns/op", 1e-3), num(med(fed)), spreadScaled(*fed, "ns/op", 1e-3), num(med(fed)-med(local)))
	}
	for _, bm := range r.Benchmarks {
		if bm.Name != "DHTLookup50" {
			continue
		}
		b.WriteString("| DHT room lookup, 50 Boxes (mocknet, 10 ms round trips) | p50 ms | p90 ms | max ms | record held by the Box that looks |\n|---|---:|---:|---:|---:|\n")
		fmt.Fprintf(&b, "| time to the first Box found | %s | %s | %s | %s%% |\n", spread(bm, "p50-ms"), spread(bm, "p90-ms"), spread(bm, "max-ms"), spread(bm, "%stored-locally"))
	}
	return b.String()
}

// spreadScaled is spread of the unit's values times k.
func spreadScaled(bm microBench, unit string, k float64) string {
	scaled := microBench{Name: bm.Name}
	for _, run := range bm.Runs {
		scaled.Runs = append(scaled.Runs, map[string]float64{unit: run[unit] * k})
	}
	return spread(scaled, unit)
}

// spread is "min–max" of a benchmark's unit over its runs, or one number.
func spread(bm microBench, unit string) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, run := range bm.Runs {
		if v, ok := run[unit]; ok {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	switch {
	case math.IsInf(lo, 1):
		return "–"
	case num(lo) == num(hi):
		return num(lo)
	}
	return num(lo) + "–" + num(hi)
}

// moreText says how many times more signald does than the reference.
func moreText(ref, sig float64) string {
	if ref == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", sig/ref)
}

// lessText says what fraction of the reference's cost signald has.
func lessText(ref, sig float64) string {
	switch {
	case ref == 0 || sig == 0:
		return "–"
	case sig <= ref:
		return fmt.Sprintf("1/%.2f", ref/sig)
	}
	return fmt.Sprintf("%.2f×", sig/ref)
}

// num prints about three significant digits, thousands grouped.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 999.5:
		s := fmt.Sprintf("%.0f", a)
		var b bytes.Buffer
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if v < 0 {
			return "-" + b.String()
		}
		return b.String()
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
