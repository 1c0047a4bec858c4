package main

import (
	"context"
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
	for _, u := range []string{"ws://192.0.2.1:8000", "ws://example.org", "ws://10.0.0.1", "192.0.2.1:3478", "[2001:db8::1]:3478", "example.org:3478"} {
		if err := checkLoopback(u); err == nil {
			t.Errorf("checkLoopback(%q) = nil, want refusal", u)
		}
	}
	for _, u := range []string{"ws://127.0.0.1:8000", "ws://[::1]:8000", "ws://localhost:1", "127.0.0.1:3478", "[::1]:3478"} {
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
