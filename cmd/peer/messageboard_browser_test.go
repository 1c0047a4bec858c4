//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/bugoutlab"
	"github.com/boxsignal/boxsignal/internal/chromium"
	"github.com/boxsignal/boxsignal/internal/netns"
)

// bundleDocs is the docs directory of the npm package bugout@0.0.13: the
// browser bundle bugout.min.js (webtorrent 1.0.2) and the demo pages.
func bundleDocs(t *testing.T) string {
	dir := filepath.Join(bugoutlab.NodeDir(t), "node_modules", "bugout", "docs")
	for _, f := range []string{"bugout.min.js", "examples/messageboard.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			netns.Unavailable(t, "bugout's browser bundle missing: run bash bugout/testdata/node/install.sh (%v)", err)
		}
	}
	return dir
}

// labOptions is the only change made to messageboard.html: one <script>
// inserted just before the page's <script src="../bugout.min.js">. The page
// calls new Bugout(serveraddress) with no options, so Bugout would
// announce to its public default trackers and simple-peer would use
// Google's and Twilio's STUN servers. The script catches the bundle's
// assignment of window.Bugout and hands the page a constructor that adds
// {announce: [the test tracker], iceServers: []} to whatever options the
// page passes; the page's own logic is untouched. The server address goes
// in the URL's #hash, the way the page reads it.
const labOptions = `<script>/* boxsignal test: Bugout's options for the test Box; the rest of the page is unmodified */
(function (lab) {
  var Real;
  function Bugout(identifier, opts) {
    if (identifier && typeof identifier == "object") { opts = identifier; identifier = null; }
    return new Real(identifier, Object.assign({}, opts, lab));
  }
  Object.defineProperty(window, "Bugout", {configurable: true,
    get: function () { return Real && Bugout; },
    set: function (v) { Real = v; Bugout.prototype = v.prototype; Object.assign(Bugout, v); }});
})(%s);
</script>
`

// messageboardPage is docs/examples/messageboard.html with labOptions
// inserted, pointing Bugout at tracker with no ICE servers.
func messageboardPage(t *testing.T, docs, tracker string) []byte {
	orig, err := os.ReadFile(filepath.Join(docs, "examples", "messageboard.html"))
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := json.Marshal(map[string]any{"announce": []string{tracker}, "iceServers": []any{}})
	bundleTag := []byte(`<script src="../bugout.min.js"`)
	if bytes.Count(orig, bundleTag) != 1 {
		t.Fatalf("messageboard.html: want one %s, the page changed", bundleTag)
	}
	return bytes.Replace(orig, bundleTag, append([]byte(fmt.Sprintf(labOptions, opts)), bundleTag...), 1)
}

// startLoggedBoard is startBoard, also returning the messageboard's log.
func startLoggedBoard(t *testing.T, ctx context.Context, lab *bugoutlab.Lab, bin, dir string) (*netns.Proc, string, *bugoutlab.Buffer) {
	t.Helper()
	cmd := lab.NS.Command(ctx, bin, "messageboard", "-data", dir, "-tracker", lab.TrackerURL, "-log-level", "info")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := new(bugoutlab.Buffer)
	cmd.Stderr = logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("messageboard log:\n%s", logs.String())
		}
	})
	p, err := lab.NS.Start(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	addr := ""
	ready := make(chan bool, 1)
	go func() {
		ok := false
		for sc.Scan() {
			l := sc.Text()
			if a, found := strings.CutPrefix(l, "address: "); found {
				addr = a
			}
			if !ok && strings.HasPrefix(l, "ready") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("messageboard exited: %v", p.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("messageboard not ready in 20 s")
	}
	return p, addr, logs
}

// TestBrowserMessageboard is the browser check of the Go messageboard:
// Debian's headless Chromium, in the lab's namespace, loads Bugout's
// browser bundle (docs/bugout.min.js of the npm package, webtorrent 1.0.2)
// and its unmodified messageboard client page (but for labOptions),
// served from the namespace. The page lists a post seeded with peer rpc,
// posts one through its UI (typed and clicked), sees it after a reload;
// the Go messageboard is killed with SIGKILL and restarted on the same
// data; a second post from the page lists all three. Every request the
// page makes goes to the namespace's address; a screenshot of the final
// page is kept in chromium.ArtifactDir.
func TestBrowserMessageboard(t *testing.T) {
	docs := bundleDocs(t)
	chromium.Path(t, bugoutlab.ChromiumEnv)
	start := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%5.1fs "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 110*time.Second)
	defer cancel()
	lab := bugoutlab.New(t, ctx)
	bin := bugoutlab.Build(t, ctx, "./cmd/peer")
	dir := t.TempDir()
	board, addr, _ := startLoggedBoard(t, ctx, lab, bin, dir)
	step("signald and peer messageboard %s up", addr)

	// A post already on the board, from the Go CLI.
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := lab.NS.Command(rctx, bin, "rpc", "-data", t.TempDir(), "-tracker", lab.TrackerURL, "-timeout", "25s", addr, "post", `"seeded by peer rpc"`).CombinedOutput()
	rcancel()
	if err != nil || strings.TrimSpace(string(out)) != "true" {
		t.Fatalf("peer rpc post = %q, %v; want true", out, err)
	}
	step("seeded one post with peer rpc")

	// The page and the bundle, from a static server in the namespace.
	page := messageboardPage(t, docs, lab.TrackerURL)
	var servedMu sync.Mutex
	var served []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /examples/messageboard.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	for _, f := range []string{"bugout.min.js", "bugout-logo.svg"} {
		mux.HandleFunc("GET /"+f, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, filepath.Join(docs, f))
		})
	}
	site := lab.Serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		servedMu.Lock()
		served = append(served, r.Method+" "+r.URL.Path)
		servedMu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	pageURL := site + "/examples/messageboard.html#" + addr

	b := lab.StartChromium(t, ctx, 900, 720)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("browser log:\n%s", b.Log())
			servedMu.Lock()
			t.Logf("served: %q", served)
			servedMu.Unlock()
		}
	})
	step("chromium up")
	if err := b.Navigate(ctx, pageURL); err != nil {
		t.Fatal(err)
	}
	step("page loaded: %s", pageURL)

	const msgs = `document.getElementById("messages").textContent`
	listed := func(posts ...string) string {
		var conds []string
		for _, p := range posts {
			q, _ := json.Marshal(p)
			conds = append(conds, msgs+".includes("+string(q)+")")
		}
		return strings.Join(conds, " && ")
	}
	waitFor := func(what, expr string, d time.Duration) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, d)
		defer wcancel()
		if err := b.WaitFor(wctx, what, expr); err != nil {
			var text string
			b.Eval(ctx, `document.getElementById("connected").textContent + " | " + `+msgs, &text)
			t.Fatalf("%v; page shows: %q", err, text)
		}
		step("page shows %s", what)
	}
	uiShown := `document.getElementById("ui").style.display === "block"`
	post := func(text string) {
		t.Helper()
		if err := b.Click(ctx, "#message"); err != nil {
			t.Fatal(err)
		}
		if err := b.Type(ctx, text); err != nil {
			t.Fatal(err)
		}
		if err := b.Click(ctx, "#send"); err != nil {
			t.Fatal(err)
		}
		step("typed %q and clicked send", text)
	}

	waitFor("the seeded post", uiShown+" && "+listed("seeded by peer rpc"), 40*time.Second)
	post("hello from chromium")
	var firstAddr string
	if err := b.Eval(ctx, `b.address()`, &firstAddr); err != nil || firstAddr == "" {
		t.Fatalf("page's Bugout address: %q, %v", firstAddr, err)
	}
	// Listed as the page renders a post: date, From: the poster's address, text.
	firstPost := "From: " + firstAddr + "\n\nhello from chromium"
	waitFor("its own post", listed("seeded by peer rpc", firstPost), 20*time.Second)

	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("both posts after a reload", uiShown+" && "+listed("seeded by peer rpc", firstPost), 40*time.Second)

	// kill -9 and restart on the same data; wait until the new process has
	// met the page (it offers to the swarm on start), then post again.
	var pageAddr string
	if err := b.Eval(ctx, `b.address()`, &pageAddr); err != nil || pageAddr == "" || pageAddr == firstAddr {
		t.Fatalf("reloaded page's Bugout address: %q, %v; want a new one (a fresh random seed)", pageAddr, err)
	}
	board.Stop(0)
	step("peer messageboard killed (SIGKILL)")
	_, addr2, logs := startLoggedBoard(t, ctx, lab, bin, dir)
	if addr2 != addr {
		t.Fatalf("address after restart %s, want %s", addr2, addr)
	}
	step("peer messageboard restarted")
	seen := func() bool {
		for _, l := range logs.Lines("msg=seen") {
			if strings.Contains(l, "address="+pageAddr) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(40 * time.Second); !seen(); {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("the restarted messageboard never saw the page (%s) in 40 s", pageAddr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	step("restarted messageboard sees the page")
	waitFor("a connection", uiShown+` && document.getElementById("connected").textContent.startsWith("yes")`, 10*time.Second)
	post("second post after kill -9")
	waitFor("all three posts", listed("seeded by peer rpc", firstPost, "From: "+pageAddr+"\n\nsecond post after kill -9"), 30*time.Second)

	png, err := b.Screenshot(ctx)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %v, %d bytes", err, len(png))
	}
	shot := filepath.Join(chromium.ArtifactDir(t, "bugoutlab"), "messageboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	// Every request went to the namespace: the page's server or the tracker.
	reqs := b.Requests()
	sawBundle, sawTracker := false, false
	for _, r := range reqs {
		u, err := url.Parse(r)
		if err == nil && u.Scheme == "blob" { // webtorrent's in-memory torrent file
			u, err = url.Parse(u.Opaque)
		}
		if err != nil || (u.Host != strings.TrimPrefix(site, "http://") && r != lab.TrackerURL && r != lab.TrackerURL+"/") {
			t.Errorf("the page requested %q: not the lab's server or tracker", r)
			continue
		}
		sawBundle = sawBundle || u.Path == "/bugout.min.js"
		sawTracker = sawTracker || u.Scheme == "ws"
	}
	if !sawBundle || !sawTracker {
		t.Errorf("requests %q: want the bundle and the tracker", reqs)
	}
	for _, l := range strings.Split(b.Log(), "\n") {
		if strings.HasPrefix(l, "exception:") {
			t.Errorf("page %s", l)
		}
	}
	step("done")
}
