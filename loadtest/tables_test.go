package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchmarksDocIsGenerated keeps docs/benchmarks.md's tables what the
// committed JSON results give: nobody edits a measured number by hand.
func TestBenchmarksDocIsGenerated(t *testing.T) {
	if _, err := runTables([]string{"-dir", "../docs/bench", "-doc", "../docs/benchmarks.md", "-check"}); err != nil {
		t.Fatal(err)
	}
}

func TestFillSections(t *testing.T) {
	sections := map[string]string{"a": "new a\n", "b": "new b\n"}
	tests := []struct {
		name, page, want string
		err              bool
	}{
		{"none", "text\n", "text\n", false},
		{"two", "x\n<!-- BEGIN loadtest tables a -->\nold\n<!-- END loadtest tables a -->\ny\n<!-- BEGIN loadtest tables b -->\n<!-- END loadtest tables b -->\n",
			"x\n<!-- BEGIN loadtest tables a -->\nnew a\n<!-- END loadtest tables a -->\ny\n<!-- BEGIN loadtest tables b -->\nnew b\n<!-- END loadtest tables b -->\n", false},
		{"unknown", "<!-- BEGIN loadtest tables c -->\n<!-- END loadtest tables c -->\n", "", true},
		{"unterminated", "<!-- BEGIN loadtest tables a -->\nold\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := fillSections(tt.page, sections)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("fillSections(%q) = %q, %v; want %q, error %v", tt.page, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.0123: "0.012", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 1234.6: "1,235", 1234567: "1,234,567", 999.7: "1,000", -2500: "-2,500"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/boxsignal/boxsignal/signal/wire
BenchmarkDecodeAnnounce-2   	  120000	      9000 ns/op	 466.67 MB/s	       0 B/op	       0 allocs/op
BenchmarkDecodeAnnounce-2   	  130000	      8500 ns/op	 494.12 MB/s	       0 B/op	       0 allocs/op
BenchmarkAnnounceRelay/senders=4/cpu-2 	 3000	 350000 ns/op	 14000 offers/s	 25300 B/op	 128 allocs/op
PASS
`
	bs := parseBench(out)
	if len(bs) != 2 || bs[0].Name != "DecodeAnnounce" || len(bs[0].Runs) != 2 || bs[0].Runs[1]["MB/s"] != 494.12 ||
		bs[1].Name != "AnnounceRelay/senders=4/cpu" || bs[1].Runs[0]["offers/s"] != 14000 {
		t.Fatalf("parseBench = %+v", bs)
	}
	if got := spread(bs[0], "ns/op"); got != "8,500–9,000" {
		t.Errorf("spread ns/op = %q", got)
	}
	if got := strings.Join(bs[1].units(), " "); got != "ns/op B/op allocs/op offers/s" {
		t.Errorf("units = %q", got)
	}
}

// TestPlotAndTables draws the plots and fills a page from small results.
func TestPlotAndTables(t *testing.T) {
	dir := t.TempDir()
	tr := compareResult{Machine: machine{CPUs: 2}, Sweep: []comparedSweep{
		{Rate: 500, Reference: &trackerResult{OffersPerS: 2500, RTTms: map[string]any{"p99": 20.0}}, Signald: &trackerResult{Peers: 10, Swarms: 2, OffersPerS: 2500, RTTms: map[string]any{"p99": 2.0}}},
		{Rate: 1000, Reference: &trackerResult{OffersPerS: 4000, RTTms: map[string]any{"p99": 200.0}}, Signald: &trackerResult{Peers: 10, Swarms: 2, OffersPerS: 5000, RTTms: map[string]any{"p99": 3.0}}},
	}}
	turnRes := func(server string, rate, cpu float64) turnRun {
		return turnRun{Server: server, TURN: &turnResult{Server: server, Allocations: 4, PacketBytes: 100, OfferedPerS: rate,
			PacketsPerS: rate, TargetCPUPerPkt: cpu, LatencyMs: map[string]any{"p99": 0.5}}}
	}
	tc := turnCompareResult{Machine: machine{CPUs: 2},
		Runs:  []turnRun{turnRes("signald", 1000, 30), turnRes("coturn", 1000, 20)},
		Sweep: []turnRun{turnRes("signald", 1000, 30), turnRes("coturn", 1000, 20), turnRes("signald", 5000, 25), turnRes("coturn", 5000, 18)}}
	tc.Summary = summarize(tc.Runs)
	if err := writeJSON(filepath.Join(dir, trackerJSON), tr); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(dir, turnJSON), tc); err != nil {
		t.Fatal(err)
	}
	p, err := runPlot([]string{"-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Files) != 2 {
		t.Fatalf("plot wrote %v, want two SVGs", p.Files)
	}
	for _, f := range p.Files {
		svg, _ := os.ReadFile(f)
		if !strings.HasPrefix(string(svg), "<svg") || !strings.Contains(string(svg), "polyline") {
			t.Fatalf("%s: %.200s", f, svg)
		}
	}

	doc := filepath.Join(dir, "bench.md")
	os.WriteFile(doc, []byte("# B\n<!-- BEGIN loadtest tables turn -->\n<!-- END loadtest tables turn -->\n<!-- BEGIN loadtest tables micro -->\nold\n<!-- END loadtest tables micro -->\n"), 0o600)
	if _, err := runTables([]string{"-dir", dir, "-doc", doc, "-check"}); err == nil {
		t.Error("tables -check passed on a stale page")
	}
	if _, err := runTables([]string{"-dir", dir, "-doc", doc}); err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(doc)
	for _, want := range []string{"| **TURN: server CPU per relayed packet** | µs | **30.0** | **20.0** | **1.50** |", toBeMeasured} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if _, err := runTables([]string{"-dir", dir, "-doc", doc, "-check"}); err != nil {
		t.Errorf("tables -check after tables: %v", err)
	}
}
