package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/bugoutlab"
)

// messageboardBudget bounds the go-messageboard scenario, from building its
// namespaces to the last check.
const messageboardBudget = 45 * time.Second

// labOptions is the only change made to Bugout's messageboard.html, the
// same as cmd/peer's TestBrowserMessageboard makes: one <script> inserted
// just before the page's <script src="../bugout.min.js">. The page calls
// new Bugout(serveraddress) with no options, so Bugout would announce to
// its public default trackers and simple-peer would use Google's and
// Twilio's STUN servers. The script catches the bundle's assignment of
// window.Bugout and hands the page a constructor that adds {announce,
// iceServers} (here: the Box's tracker and what its /ice handed out) to
// whatever options the page passes; the page's own logic is untouched.
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

// messageboardPage is docs/examples/messageboard.html of bugout@0.0.13 with
// labOptions inserted.
func messageboardPage(orig []byte, tracker string, ice []iceServer) ([]byte, error) {
	if ice == nil {
		ice = []iceServer{}
	}
	opts, err := json.Marshal(map[string]any{"announce": []string{tracker}, "iceServers": ice})
	if err != nil {
		return nil, err
	}
	bundleTag := []byte(`<script src="../bugout.min.js"`)
	if bytes.Count(orig, bundleTag) != 1 {
		return nil, fmt.Errorf("messageboard.html: want one %s, the page changed", bundleTag)
	}
	return bytes.Replace(orig, bundleTag, append(fmt.Appendf(nil, labOptions, opts), bundleTag...), 1), nil
}

// messageboardRoutes serve the messageboard page and its logo, next to the
// lab page on the lab's page server. Each request for the page fetches
// the Box's /ice from the box namespace, so the page gets fresh TURN
// credentials, as the lab page does when it fetches /ice itself.
func messageboardRoutes(t *testing.T, l *lab, docs string) map[string]http.Handler {
	t.Helper()
	orig, err := os.ReadFile(filepath.Join(docs, "examples", "messageboard.html"))
	if err != nil {
		t.Fatalf("messageboard.html: %v", err)
	}
	tracker := "ws://" + net.JoinHostPort(boxIP, trackerPort)
	return map[string]http.Handler{
		"/examples/messageboard.html": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ice, err := fetchICE(r.Context(), l)
			var page []byte
			if err == nil {
				page, err = messageboardPage(orig, tracker, ice)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(page)
		}),
		"/bugout-logo.svg": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, filepath.Join(docs, "bugout-logo.svg"))
		}),
	}
}

// fetchICE gets the Box's /ice from inside the box namespace.
func fetchICE(ctx context.Context, l *lab) ([]iceServer, error) {
	tr := &http.Transport{DialContext: l.box.dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := "http://" + net.JoinHostPort(boxIP, trackerPort) + "/ice"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s = %d %q", url, resp.StatusCode, body)
	}
	var v struct {
		IceServers []iceServer `json:"iceServers"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return v.IceServers, nil
}

// boardProc is peer messageboard running in the box namespace.
type boardProc struct {
	address string
	log     *bugoutlab.Buffer // its stderr
	done    chan struct{}
}

// startBoard starts peer messageboard in the box namespace, on the Box's
// tracker and its /ice, and waits until it prints its address and ready.
// t.Cleanup stops it: SIGTERM, then SIGKILL by PID after 5 s.
func startBoard(ctx context.Context, t *testing.T, l *lab, bin string) (*boardProc, error) {
	t.Helper()
	cmd := l.box.command(ctx, bin, "messageboard",
		"-data", t.TempDir(),
		"-tracker", "ws://"+net.JoinHostPort(boxIP, trackerPort),
		"-ice-url", "http://"+net.JoinHostPort(boxIP, trackerPort)+"/ice",
		"-log-level", "info")
	p := &boardProc{log: &bugoutlab.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start peer messageboard: %w", err)
	}
	ready := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		addr, sent := "", false
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "address: "); ok {
				addr = a
			}
			if !sent && strings.HasPrefix(line, "ready") {
				ready <- addr
				sent = true
			}
		}
		if !sent {
			close(ready)
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case addr, ok := <-ready:
		if !ok || addr == "" {
			<-p.done
			return nil, fmt.Errorf("peer messageboard exited before it was ready (%v):\n%s", cmd.ProcessState, p.log.String())
		}
		p.address = addr
		return p, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("peer messageboard not ready: %w", ctx.Err())
	}
}

// peerRPC runs peer rpc in the box namespace with a fresh identity: it
// joins the board's room through the Box and calls it.
func peerRPC(ctx context.Context, t *testing.T, l *lab, bin, board, call, args string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout+2*time.Second)
	defer cancel()
	out, err := l.box.command(ctx, bin, "rpc",
		"-data", t.TempDir(),
		"-tracker", "ws://"+net.JoinHostPort(boxIP, trackerPort),
		"-ice-url", "http://"+net.JoinHostPort(boxIP, trackerPort)+"/ice",
		"-timeout", stepTimeout.String(),
		board, call, args).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// messageboardPairs is, for every connected RTCPeerConnection of the
// messageboard page's Bugout (the page's global b), the ICE server URLs it
// was made with and its selected candidate pair, from getStats:
// webtorrent's peers each hold a simple-peer whose _pc it is.
const messageboardPairs = `(async () => {
  const out = [];
  let ice = [];
  const peers = Object.values((b.torrent && b.torrent._peers) || {});
  for (const p of peers) {
    const pc = p.conn && p.conn._pc;
    if (!pc || pc.connectionState !== "connected") continue;
    ice = (pc.getConfiguration().iceServers || []).flatMap((s) => [].concat(s.urls));
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    const pair = pairId && stats.get(pairId);
    if (!pair) continue;
    const c = (id) => {
      const s = stats.get(id) || {};
      return {type: s.candidateType, address: s.address, port: s.port, protocol: s.protocol, relayProtocol: s.relayProtocol};
    };
    out.push({local: c(pair.localCandidateId), remote: c(pair.remoteCandidateId), rttMs: Math.round((pair.currentRoundTripTime || 0) * 1000)});
  }
  return {pairs: out, ice};
})()`

// runMessageboard is the go-messageboard scenario: the Go messageboard
// (peer messageboard, built from ./cmd/peer) runs in the box namespace, on
// the lab's Internet, with the Box's tracker and /ice; the original
// docs/examples/messageboard.html of bugout@0.0.13, served by the lab's
// page server with only labOptions added, is opened in home A's Chromium
// behind an endpoint-independent NAT. The page lists the board (one post
// seeded with peer rpc), posts through its UI (typed and clicked), and
// lists the post again after a reload.
func runMessageboard(t *testing.T, rep *report, signald, peer, bin, bundle string) {
	const name = "go-messageboard"
	ctx, cancel := context.WithTimeout(t.Context(), messageboardBudget)
	defer cancel()
	check := func(check string, ok bool, format string, args ...any) bool {
		rep.check(name, check, ok, format, args...)
		if !ok {
			t.Fail()
		}
		return ok
	}

	sc := scenario{name: name, nat: natEndpointIndependent, want: connectDirect}
	l := newLab(t, sc.nat)
	dns := startDNSSink(t, l)
	box := startBox(ctx, t, l, sc, signald)
	servePage(t, l, bundle, messageboardRoutes(t, l, filepath.Dir(bundle)))
	if err := box.waitHealthy(ctx, l); err != nil {
		t.Fatalf("signald: %v\n%s", err, box.log.String())
	}
	defer func() {
		if t.Failed() {
			t.Logf("signald log:\n%s", box.log.String())
		}
	}()

	// The board and the browser start together.
	var (
		board    *boardProc
		boardErr error
		br       *browser
		brErr    error
	)
	t0 := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		br, brErr = startBrowser(ctx, t, l.a.ns, l.a.name, bin)
	}()
	board, boardErr = startBoard(ctx, t, l, peer)
	<-done
	if board != nil {
		defer func() {
			if t.Failed() {
				t.Logf("peer messageboard log:\n%s", board.log.String())
			}
		}()
	}
	if br != nil {
		defer func() {
			if t.Failed() {
				t.Logf("browser %s log:\n%s", br.name, br.Log())
			}
		}()
	}
	if !check("board up", boardErr == nil && brErr == nil, "peer messageboard %s ready after %d ms; browser in home A: err %v; board: err %v",
		boardAddress(board), time.Since(t0).Milliseconds(), brErr, boardErr) {
		return
	}

	// A post already on the board, from the Go CLI in the box namespace.
	var nonce [4]byte
	rand.Read(nonce[:])
	seeded := "seeded by peer rpc " + hex.EncodeToString(nonce[:])
	t1 := time.Now()
	out, err := peerRPC(ctx, t, l, peer, board.address, "post", jsString(seeded))
	if !check("seed with peer rpc", err == nil && out == "true", "peer rpc %s post = %q after %d ms, err %v; want true",
		short(board.address), out, time.Since(t1).Milliseconds(), err) {
		return
	}

	const msgs = `document.getElementById("messages").textContent`
	listed := func(posts ...string) string {
		conds := []string{`document.getElementById("ui").style.display === "block"`}
		for _, p := range posts {
			conds = append(conds, msgs+".includes("+jsString(p)+")")
		}
		return strings.Join(conds, " && ")
	}
	shows := func() string {
		var text string
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		if err := br.eval(sctx, `document.getElementById("connected").textContent + " | " + `+msgs, &text); err != nil {
			return err.Error()
		}
		return text
	}
	wait := func(what, expr string) (time.Duration, error) {
		start := time.Now()
		wctx, wcancel := context.WithTimeout(ctx, stepTimeout)
		defer wcancel()
		err := br.WaitFor(wctx, what, expr)
		return time.Since(start), err
	}

	// list: the page, opened with the board's address in its #hash, lists
	// the seeded post.
	pageURL := "http://" + net.JoinHostPort(boxIP, pagePort) + "/examples/messageboard.html#" + board.address
	t2 := time.Now()
	err = br.Navigate(ctx, pageURL)
	loaded := time.Since(t2)
	var took time.Duration
	if err == nil {
		took, err = wait("the seeded post", listed(seeded))
	}
	if !check("list", err == nil, "the page listed the seeded post %d ms after it loaded (load %d ms), err %v",
		took.Milliseconds(), loaded.Milliseconds(), err) {
		t.Logf("page shows: %q", shows())
		checkStray(check, l, dns)
		return
	}

	// post: typed into the page's input and sent with its button; the
	// board answers and broadcasts "refresh", and the page lists it.
	text := "hello from home A " + hex.EncodeToString(nonce[:])
	var pageAddr string
	err = br.eval(ctx, `b.address()`, &pageAddr)
	for _, step := range []func() error{
		func() error { return br.Click(ctx, "#message") },
		func() error { return br.Type(ctx, text) },
		func() error { return br.Click(ctx, "#send") },
	} {
		if err == nil {
			err = step()
		}
	}
	// Listed as the page renders a post: date, From: the poster's address, text.
	own := "From: " + pageAddr + "\n\n" + text
	if err == nil {
		took, err = wait("its own post", listed(seeded, own))
	}
	if !check("post", err == nil, "typed and sent %q: listed from %s after %d ms, err %v", text, short(pageAddr), took.Milliseconds(), err) {
		t.Logf("page shows: %q", shows())
		checkStray(check, l, dns)
		return
	}

	// The selected candidate pair: the page is behind its NAT, the board on
	// the lab's Internet; an endpoint-independent NAT needs no relay.
	var conns struct {
		Pairs []candidatePair `json:"pairs"`
		ICE   []string        `json:"ice"`
	}
	err = br.eval(ctx, messageboardPairs, &conns)
	check("A ICE servers from /ice", err == nil && iceFromBox(conns.ICE), "%s, err %v", strings.Join(conns.ICE, " "), err)
	ok := err == nil && len(conns.Pairs) > 0
	var desc []string
	for _, pr := range conns.Pairs {
		desc = append(desc, fmt.Sprintf("local %v ↔ remote %v, rtt %d ms", pr.Local, pr.Remote, pr.RTTMs))
		ok = ok && !pr.relayed()
	}
	check("A candidate pair", ok, "%s (want no relay), err %v", strings.Join(desc, "; "), err)

	// list after a reload: a new page (a new Bugout identity) lists both.
	t3 := time.Now()
	err = br.Reload(ctx)
	loaded = time.Since(t3)
	if err == nil {
		took, err = wait("both posts after a reload", listed(seeded, own))
	}
	if !check("list after reload", err == nil, "both posts listed %d ms after the reloaded page loaded (load %d ms), err %v",
		took.Milliseconds(), loaded.Milliseconds(), err) {
		t.Logf("page shows: %q", shows())
	}
	checkStray(check, l, dns)
}

func boardAddress(b *boardProc) string {
	if b == nil {
		return "?"
	}
	return b.address
}
