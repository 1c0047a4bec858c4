//go:build linux

package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/chromium"
)

// TestDashboardInChromium loads the dashboard in headless Chromium, sees
// its figures change as test clients announce, checks that the page asked
// nothing of any host but the Box, and stores a screenshot.
func TestDashboardInChromium(t *testing.T) {
	bin := chromium.Path(t, "CHROMIUM")
	d := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := chromium.Start(ctx, t, chromium.Options{
		Binary:            bin,
		HostResolverRules: "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		Width:             1200,
		Height:            1500,
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := b.Navigate(ctx, "http://"+d.addr+"/"); err != nil {
		t.Fatal(err)
	}
	eval := func(expr string) string {
		var v any
		if err := b.Eval(ctx, expr, &v); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(v)
	}
	figures := `["live","connections","peers","swarms"].map(id => (document.getElementById(id)||{}).textContent).join("|")`
	waitFor := func(what, want string) string {
		deadline := time.Now().Add(15 * time.Second)
		var got string
		for time.Now().Before(deadline) {
			if got = eval(figures); got == want {
				return got
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("dashboard never showed %s: figures %q, want %q", what, got, want)
		return ""
	}
	waitFor("an idle Box, live", "live|0|0|0")
	for i := range 6 {
		joinSwarm(t, d.addr, i, min(i, 3))
		time.Sleep(300 * time.Millisecond) // the chart shows them arrive
	}
	waitFor("six peers in one swarm", "live|6|6|1")
	time.Sleep(1500 * time.Millisecond) // a few more points on the charts

	png, err := b.Screenshot(ctx)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %v, %d bytes", err, len(png))
	}
	path := filepath.Join(chromium.ArtifactDir(t, "signald"), "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	requests := b.Requests()
	sawFeed := false
	for _, r := range requests {
		u, err := url.Parse(r)
		if err != nil || (u.Host != d.addr && u.Scheme != "data" && u.Scheme != "about") {
			t.Errorf("the page requested %q: not the Box", r)
		}
		sawFeed = sawFeed || u.Path == "/events"
	}
	if !sawFeed || len(requests) < 4 {
		t.Errorf("requests %q: want the page, its script and style, and /events", requests)
	}
	for _, e := range b.Exceptions() {
		t.Errorf("page error: %s", e)
	}
}
