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
