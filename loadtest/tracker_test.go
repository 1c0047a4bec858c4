package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIdleSmoke keeps the idle load working: a few peers against a fresh
// signald, bounded in count and time.
func TestIdleSmoke(t *testing.T) {
	res, err := runIdle(context.Background(), []string{"-n", "20", "-swarms", "3", "-settle", "100ms", "-timeout", "2m"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || res.Peers != 20 || res.RSSAfter <= 0 {
		t.Fatalf("idle run %+v", res)
	}
}

func TestRefusesNonLoopbackTarget(t *testing.T) {
	for _, u := range []string{"ws://192.0.2.1:8000", "ws://example.org", "ws://10.0.0.1"} {
		if err := checkLoopback(u); err == nil {
			t.Errorf("checkLoopback(%q) = nil, want refusal", u)
		}
	}
	for _, u := range []string{"ws://127.0.0.1:8000", "ws://[::1]:8000", "ws://localhost:1"} {
		if err := checkLoopback(u); err != nil {
			t.Errorf("checkLoopback(%q) = %v", u, err)
		}
	}
}

// TestTrackerSmoke keeps the tracker load working: a few peers in closed
// loop and at a fixed rate against a fresh signald, bounded in time.
func TestTrackerSmoke(t *testing.T) {
	for _, rate := range []string{"0", "50"} {
		res, err := runTracker(context.Background(), []string{"-peers", "6", "-swarms", "2", "-duration", "500ms", "-rate", rate, "-timeout", "2m"})
		if err != nil {
			t.Fatal(err)
		}
		if res.OffersPerS == 0 || res.AnswersPerS == 0 || len(res.Failures) != 0 || res.RTTms["samples"].(int) == 0 {
			t.Fatalf("tracker run at rate %s: %+v", rate, res)
		}
	}
}

func TestPlotFromCompareJSON(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "c.json")
	r := compareResult{Machine: machine{CPUs: 2}, Sweep: []comparedSweep{
		{Rate: 500, Reference: &trackerResult{OffersPerS: 2500, RTTms: map[string]any{"p99": 20.0}}, Signald: &trackerResult{Peers: 10, Swarms: 2, OffersPerS: 2500, RTTms: map[string]any{"p99": 2.0}}},
		{Rate: 1000, Reference: &trackerResult{OffersPerS: 4000, RTTms: map[string]any{"p99": 200.0}}, Signald: &trackerResult{Peers: 10, Swarms: 2, OffersPerS: 5000, RTTms: map[string]any{"p99": 3.0}}},
	}}
	b, _ := json.Marshal(r)
	os.WriteFile(in, b, 0o600)
	out := filepath.Join(dir, "s.svg")
	if _, err := runPlot([]string{"-in", in, "-out", out}); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(out)
	if !strings.HasPrefix(string(svg), "<svg") || !strings.Contains(string(svg), "polyline") {
		t.Fatalf("plot output %.200s", svg)
	}
}
