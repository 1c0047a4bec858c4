package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/netns"
)

// chromiumPath finds Debian's Chromium: the binary itself rather than the
// /usr/bin/chromium launcher, which adds Google API keys and flags of its
// own from /etc/chromium.d. E2E_CHROMIUM overrides it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("E2E_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	netns.Unavailable(t, "e2e: Chromium is needed (Debian: apt-get install chromium), or set E2E_CHROMIUM")
	return ""
}

// disabledFeatures lists every Chromium feature the lab turns off, in the
// one --disable-features switch Chromium honours (it takes only the last
// one given). Each would make the browser talk to Google or to the local
// network on its own.
var disabledFeatures = []string{
	"AutofillServerCommunication",
	"CertificateTransparencyComponentUpdater",
	"DialMediaRouteProvider",
	"InterestFeedContentSuggestions",
	"MediaRouter",
	"NetworkTimeServiceQuerying",
	"OptimizationHints",
	"PrivacySandboxSettings4",
	"Translate",
	// With it, host candidates are .local names that the far page resolves
	// by multicast DNS on its own link, and even with no host candidate
	// offered (profilePrefs) its mDNS responder still joins the multicast
	// group: an IGMP report to 224.0.0.22 that the egress check counts.
	"WebRtcHideLocalIpsWithMdns",
}

// profilePrefs is the lab profile's Default/Preferences. The WebRTC IP
// handling policy default_public_interface_only (the setting behind Chrome's
// WebRtcIPHandling policy) makes a page offer no host candidate, only
// server-reflexive and relayed ones. Across two NATs a host candidate can
// never connect, but offering it makes the far page send ICE checks to this
// home's private address (out through its own router), or, with mDNS
// hiding, multicast DNS queries on its link: packets to addresses other than
// the Box and the other router, which the egress check forbids.
const profilePrefs = `{"webrtc": {"ip_handling_policy": "default_public_interface_only"}}`

// blackholedNames are host resolver rules for the names Chromium still looks
// up with every switch above, at start-up, whatever the page does: the
// update client (update.googleapis.com/service/update2/json, although the
// component updater is off) and the account reconcilor
// (accounts.google.com/ListAccounts). ~NOTFOUND fails the lookup inside the
// browser, so no packet leaves. Only these exact names: the page itself uses
// IP literals, and any other lookup must still show up at the lab's
// resolver.
//
// The third is the spell checker's dictionary download
// (redirector.gvt1.com/edgedl/chrome/dict/en-us-10-2.bdic), which typing
// into a page's text input can start (the go-messageboard scenario types
// into Bugout's messageboard page): in a net log it came 0.4 s after the
// page's input got focus and keys, in 3 runs of 15. Turning spell
// checking off in the profile (browser.enable_spellchecking false, with
// spellcheck.dictionaries empty) did not stop it (1 run of 8).
var blackholedNames = []string{
	"MAP accounts.google.com ~NOTFOUND",
	"MAP update.googleapis.com ~NOTFOUND",
	"MAP redirector.gvt1.com ~NOTFOUND",
}

// chromiumArgs are the switches of a lab browser: headless, as root, and
// with every background service that phones home turned off.
func chromiumArgs(userDataDir string) []string {
	return []string{
		"--headless",
		"--no-sandbox", // root
		"--disable-gpu",
		"--disable-dev-shm-usage",
		"--no-first-run",
		"--no-default-browser-check",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--disable-default-apps",
		"--disable-extensions",
		"--disable-domain-reliability",
		"--disable-client-side-phishing-detection",
		"--disable-breakpad",
		"--no-pings",
		"--metrics-recording-only",
		"--safebrowsing-disable-auto-update",
		"--password-store=basic",
		"--mute-audio",
		"--disable-features=" + strings.Join(disabledFeatures, ","),
		"--disable-field-trial-config",
		"--disable-component-extensions-with-background-pages",
		"--no-service-autorun",
		"--host-resolver-rules=" + strings.Join(blackholedNames, ", "),
		"--remote-debugging-pipe",
		"--user-data-dir=" + userDataDir,
		"about:blank",
	}
}

// browser is a headless Chromium running in a home's namespace, driven
// over a DevTools pipe, with one page.
type browser struct {
	name    string
	cmd     *exec.Cmd
	waited  chan struct{} // closed when cmd.Wait returned
	cdp     *cdp
	replies *os.File // the read end of the browser's fd 4
	session string   // the page's

	mu  sync.Mutex
	log []string // console messages and exceptions, for failure reports
}

// startBrowser starts Chromium inside n and opens one blank page. t.Cleanup
// stops it: Browser.close, then SIGKILL by PID after 5 s.
func startBrowser(ctx context.Context, t *testing.T, n ns, name, chromium string) (*browser, error) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "Default"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(profilePrefs), 0o600); err != nil {
		return nil, err
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		return nil, err
	}
	b := &browser{name: name, waited: make(chan struct{})}
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, chromium}, chromiumArgs(dir)...)...)
	// Nothing from the caller's environment (proxies, API keys): a home
	// directory of its own and a PATH.
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin", "XDG_CONFIG_HOME=" + dir, "XDG_CACHE_HOME=" + dir}
	cmd.ExtraFiles = []*os.File{cmdR, outW} // fd 3: commands in, fd 4: replies out
	cmd.Stdout = &lineWriter{b: b, prefix: "stdout"}
	cmd.Stderr = &lineWriter{b: b, prefix: "stderr"}
	cmd.WaitDelay = 2 * time.Second // its children may hold stdout open
	err = cmd.Start()
	cmdR.Close()
	outW.Close()
	if err != nil {
		cmdW.Close()
		outR.Close()
		return nil, fmt.Errorf("start chromium in %s: %w", n.name, err)
	}
	b.cmd = cmd
	b.replies = outR
	go func() {
		cmd.Wait()
		close(b.waited)
	}()
	b.cdp = newCDP(cmdW, outR, b.event)
	t.Cleanup(b.stop)

	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.cdp.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, fmt.Errorf("browser %s: %w", name, err)
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.cdp.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		return nil, fmt.Errorf("browser %s: %w", name, err)
	}
	b.session = attached.SessionID
	if err := b.cdp.call(ctx, b.session, "Runtime.enable", nil, nil); err != nil {
		return nil, fmt.Errorf("browser %s: %w", name, err)
	}
	return b, nil
}

// stop closes the browser and waits for it: Browser.close, then SIGKILL by
// PID if it has not exited within 5 s.
func (b *browser) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = b.cdp.call(ctx, "", "Browser.close", nil, nil)
	cancel()
	b.cdp.close()
	select {
	case <-b.waited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.waited
	}
	// A child that inherited fd 4 could keep the pipe open: closing our
	// end ends the reading goroutine in any case.
	b.replies.Close()
	b.cdp.wait()
}

// open navigates the page to url and waits until the page's script has
// defined window.lab.
func (b *browser) open(ctx context.Context, url string) error {
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.cdp.call(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		var ready bool
		err := b.eval(ctx, `typeof lab === "object" && typeof Bugout === "function"`, &ready)
		if err == nil && ready {
			return nil
		}
		select {
		case <-ctx.Done():
			var where string
			wctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = b.eval(wctx, `JSON.stringify({href: location.href, readyState: document.readyState, lab: typeof lab, Bugout: typeof Bugout})`, &where)
			return fmt.Errorf("page %s not ready: %v (page: %s, last: %v)", url, ctx.Err(), where, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// eval evaluates a JavaScript expression in the page, awaits it if it is a
// promise, and decodes its value (JSON) into out.
func (b *browser) eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string          `json:"description"`
				Value       json.RawMessage `json:"value"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := b.cdp.call(ctx, b.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true,
	}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		msg := e.Text
		if e.Exception != nil {
			if e.Exception.Description != "" {
				msg = e.Exception.Description
			} else if len(e.Exception.Value) > 0 {
				msg = string(e.Exception.Value)
			}
		}
		return errors.New(firstLine(msg))
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// event keeps the page's console messages and uncaught exceptions.
func (b *browser) event(method, _ string, params json.RawMessage) {
	switch method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(params, &p) != nil {
			return
		}
		var parts []string
		for _, a := range p.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		b.addLog("console." + p.Type + ": " + strings.Join(parts, " "))
	case "Runtime.exceptionThrown":
		var p struct {
			ExceptionDetails struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(params, &p) == nil {
			b.addLog("exception: " + p.ExceptionDetails.Text + " " + firstLine(p.ExceptionDetails.Exception.Description))
		}
	}
}

func (b *browser) addLog(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.log) < 500 {
		b.log = append(b.log, line)
	}
}

// logText is what the browser printed and the page logged, for a failure
// report.
func (b *browser) logText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.log, "\n")
}

// lineWriter keeps Chromium's own output lines in the browser's log.
type lineWriter struct {
	b      *browser
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		// No D-Bus in the lab: Chromium's complaints about it are noise.
		if line := string(w.buf[:i]); !strings.Contains(line, "dbus/") {
			w.b.addLog(w.prefix + ": " + line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// navigate loads url in the page and waits until a new document is
// complete, for pages that are not the lab's (no window.lab to wait for).
func (b *browser) navigate(ctx context.Context, url string) error {
	var before string
	_ = b.eval(ctx, `String(performance.timeOrigin)`, &before)
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.cdp.call(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	return b.waitNewDocument(ctx, before)
}

// reload reloads the page, as the browser's reload button does, and waits
// until the new document is complete.
func (b *browser) reload(ctx context.Context) error {
	var before string
	_ = b.eval(ctx, `String(performance.timeOrigin)`, &before)
	if err := b.cdp.call(ctx, b.session, "Page.reload", map[string]any{"ignoreCache": true}, nil); err != nil {
		return err
	}
	return b.waitNewDocument(ctx, before)
}

// waitNewDocument waits until the page's document is another than the one
// whose performance.timeOrigin was before, and complete.
func (b *browser) waitNewDocument(ctx context.Context, before string) error {
	return b.waitFor(ctx, "the document to load", `String(performance.timeOrigin) !== `+jsString(before)+` && document.readyState === "complete"`)
}

// waitFor polls the JavaScript expression every 50 ms until it is true.
func (b *browser) waitFor(ctx context.Context, what, expr string) error {
	var last error
	for {
		var ok bool
		if last = b.eval(ctx, `Boolean(`+expr+`)`, &ok); last == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// click clicks the middle of the element that the CSS selector finds with
// the mouse's left button, as a user does.
func (b *browser) click(ctx context.Context, selector string) error {
	var box struct{ X, Y float64 }
	if err := b.eval(ctx, `(() => { const e = document.querySelector(`+jsString(selector)+`);
		if (!e) throw new Error("no element "+`+jsString(selector)+`);
		e.scrollIntoView({block: "center"});
		const r = e.getBoundingClientRect();
		if (r.width === 0 || r.height === 0) throw new Error(`+jsString(selector+" is not displayed")+`);
		return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()`, &box); err != nil {
		return fmt.Errorf("click %s: %w", selector, err)
	}
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		ev := map[string]any{"type": typ, "x": box.X, "y": box.Y}
		if typ != "mouseMoved" {
			ev["button"], ev["clickCount"] = "left", 1
		}
		if err := b.cdp.call(ctx, b.session, "Input.dispatchMouseEvent", ev, nil); err != nil {
			return fmt.Errorf("click %s: %w", selector, err)
		}
	}
	return nil
}

// typeText types text into the focused element, one key press per
// character.
func (b *browser) typeText(ctx context.Context, text string) error {
	for _, r := range text {
		s := string(r)
		if err := b.cdp.call(ctx, b.session, "Input.dispatchKeyEvent", map[string]any{"type": "keyDown", "key": s, "text": s, "unmodifiedText": s}, nil); err != nil {
			return err
		}
		if err := b.cdp.call(ctx, b.session, "Input.dispatchKeyEvent", map[string]any{"type": "keyUp", "key": s}, nil); err != nil {
			return err
		}
	}
	return nil
}
