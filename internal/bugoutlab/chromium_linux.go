package bugoutlab

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/netns"
)

// ChromiumPath is Debian's Chromium binary itself (not the /usr/bin/chromium
// launcher, which adds Google API keys and flags from /etc/chromium.d), or
// BUGOUTLAB_CHROMIUM. Without one it skips the test (fails it under CI=true).
func ChromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("BUGOUTLAB_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	netns.Unavailable(t, "bugoutlab: Chromium is needed (Debian: apt-get install chromium), or set BUGOUTLAB_CHROMIUM")
	return ""
}

// chromiumDisabledFeatures are merged into the one --disable-features switch
// (Chromium honours only the last one given). Each would make the browser
// talk to Google on its own; WebRtcHideLocalIpsWithMdns would hide the
// page's host candidate behind a .local name that the Go peer (mDNS off)
// cannot resolve, so the page offers its namespace address instead.
var chromiumDisabledFeatures = []string{
	"AutofillServerCommunication",
	"CertificateTransparencyComponentUpdater",
	"DialMediaRouteProvider",
	"InterestFeedContentSuggestions",
	"MediaRouter",
	"NetworkTimeServiceQuerying",
	"OptimizationHints",
	"PrivacySandboxSettings4",
	"Translate",
	"WebRtcHideLocalIpsWithMdns",
}

// Browser is a headless Chromium running inside the lab's namespace, driven
// over a DevTools pipe (no debugging port), with one page.
type Browser struct {
	cmd     *exec.Cmd
	waited  chan struct{}
	cmdW    *os.File // fd 3 of the browser: commands
	replies *os.File // fd 4 of the browser: replies and events
	session string

	mu       sync.Mutex
	next     int
	pending  map[int]chan cdpReply
	log      []string // console, exceptions, the browser's stderr
	requests []string // every URL the page asked for (HTTP and WebSocket)
	readDone chan struct{}
}

type cdpReply struct {
	Result json.RawMessage
	Err    error
}

// StartChromium runs Chromium headless inside the namespace, where the only
// addresses are loopback and the lab's; every host name resolves to nothing
// (--host-resolver-rules), so a stray lookup fails inside the browser. It
// opens one blank page of width×height. t.Cleanup closes the browser
// (Browser.close, then SIGKILL to its process group by PID after 5 s).
func (l *Lab) StartChromium(t testing.TB, ctx context.Context, width, height int) *Browser {
	t.Helper()
	bin := ChromiumPath(t)
	dir := t.TempDir()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
		"--disable-client-side-phishing-detection", "--disable-breakpad", "--no-pings",
		"--metrics-recording-only", "--safebrowsing-disable-auto-update",
		"--password-store=basic", "--mute-audio", "--disable-field-trial-config",
		"--disable-component-extensions-with-background-pages", "--no-service-autorun",
		"--disable-features=" + strings.Join(chromiumDisabledFeatures, ","),
		// The page and the tracker are the lab's IP literal; any name is a
		// stray one (IP literals go through the rules too, hence EXCLUDE).
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE " + l.Addr,
		"--remote-debugging-pipe",
		"--user-data-dir=" + dir,
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"about:blank",
	}
	b := &Browser{waited: make(chan struct{}), cmdW: cmdW, replies: outR,
		pending: map[int]chan cdpReply{}, readDone: make(chan struct{})}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.NS.Name(), bin}, args...)...)
	// Nothing from the caller's environment (proxies, API keys).
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin", "XDG_CONFIG_HOME=" + dir, "XDG_CACHE_HOME=" + dir}
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	cmd.Stderr = &lineWriter{b: b}
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	cmdR.Close()
	outW.Close()
	if err != nil {
		cmdW.Close()
		outR.Close()
		t.Fatalf("start chromium: %v", err)
	}
	b.cmd = cmd
	go func() { cmd.Wait(); close(b.waited) }()
	go b.read()
	t.Cleanup(b.stop)

	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b.Log())
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	b.session = att.SessionID
	for _, m := range []string{"Runtime.enable", "Page.enable", "Network.enable"} {
		if err := b.call(ctx, b.session, m, nil, nil); err != nil {
			t.Fatalf("chromium: %v", err)
		}
	}
	if err := b.call(ctx, b.session, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return b
}

// stop closes the browser: Browser.close, then SIGKILL to its process
// group (by the PID we started) if it has not exited within 5 s.
func (b *Browser) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = b.call(ctx, "", "Browser.close", nil, nil)
	cancel()
	select {
	case <-b.waited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.waited
	}
	// Children that inherited the pipes could hold them open: closing our
	// ends ends the reader in any case.
	b.cmdW.Close()
	b.replies.Close()
	<-b.readDone
}

// read dispatches the browser's NUL-terminated JSON messages.
func (b *Browser) read() {
	defer close(b.readDone)
	defer func() {
		b.mu.Lock()
		for id, ch := range b.pending {
			ch <- cdpReply{Err: errors.New("browser pipe closed")}
			delete(b.pending, id)
		}
		b.mu.Unlock()
	}()
	r := bufio.NewReaderSize(b.replies, 1<<20)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			return
		}
		var m struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				rep := cdpReply{Result: m.Result}
				if m.Error != nil {
					rep.Err = errors.New(m.Error.Message)
				}
				ch <- rep
			}
			continue
		}
		b.event(m.Method, m.Params)
	}
}

func (b *Browser) call(ctx context.Context, session, method string, params, result any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpReply, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.cmdW.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return fmt.Errorf("%s: %w", method, r.Err)
		}
		if result != nil {
			return json.Unmarshal(r.Result, result)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *Browser) event(method string, params json.RawMessage) {
	switch method {
	case "Network.requestWillBeSent":
		var p struct {
			Request struct {
				URL string `json:"url"`
			} `json:"request"`
		}
		if json.Unmarshal(params, &p) == nil {
			b.add(&b.requests, p.Request.URL)
		}
	case "Network.webSocketCreated":
		var p struct {
			URL string `json:"url"`
		}
		if json.Unmarshal(params, &p) == nil {
			b.add(&b.requests, p.URL)
		}
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
		b.add(&b.log, "console."+p.Type+": "+strings.Join(parts, " "))
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
			b.add(&b.log, "exception: "+p.ExceptionDetails.Text+" "+p.ExceptionDetails.Exception.Description)
		}
	}
}

func (b *Browser) add(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(*list) < 1000 {
		*list = append(*list, s)
	}
}

// Log is what the page logged (console, uncaught exceptions) and Chromium
// printed on stderr.
func (b *Browser) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.log, "\n")
}

// Requests are the URLs of every request and WebSocket the page made.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// Navigate loads url in the page and waits until its document is complete.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, b.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	return b.waitComplete(ctx)
}

// Reload reloads the page, as the browser's reload button does, and waits
// until its document is complete.
func (b *Browser) Reload(ctx context.Context) error {
	// The old document must be gone before readyState is read again.
	var before string
	_ = b.Eval(ctx, `String(performance.timeOrigin)`, &before)
	if err := b.call(ctx, b.session, "Page.reload", map[string]any{"ignoreCache": true}, nil); err != nil {
		return err
	}
	return b.WaitFor(ctx, "the reloaded document", `String(performance.timeOrigin) !== `+jsString(before)+` && document.readyState === "complete"`)
}

func (b *Browser) waitComplete(ctx context.Context) error {
	return b.WaitFor(ctx, "the document to load", `document.readyState === "complete"`)
}

// WaitFor polls the JavaScript expression every 100 ms until it is true.
func (b *Browser) WaitFor(ctx context.Context, what, expr string) error {
	var last error
	for {
		var ok bool
		if last = b.Eval(ctx, `Boolean(`+expr+`)`, &ok); last == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// (JSON) into out, if not nil.
func (b *Browser) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception *struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := b.call(ctx, b.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		msg := e.Text
		if e.Exception != nil && e.Exception.Description != "" {
			msg = e.Exception.Description
		}
		return errors.New(msg)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// Click clicks the middle of the element that the CSS selector finds, with
// the mouse's left button, as a user does.
func (b *Browser) Click(ctx context.Context, selector string) error {
	var box struct{ X, Y float64 }
	if err := b.Eval(ctx, `(() => { const e = document.querySelector(`+jsString(selector)+`);
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
		if err := b.call(ctx, b.session, "Input.dispatchMouseEvent", ev, nil); err != nil {
			return err
		}
	}
	return nil
}

// Type types text into the focused element, one key press per character.
func (b *Browser) Type(ctx context.Context, text string) error {
	for _, r := range text {
		s := string(r)
		if err := b.call(ctx, b.session, "Input.dispatchKeyEvent", map[string]any{"type": "keyDown", "key": s, "text": s, "unmodifiedText": s}, nil); err != nil {
			return err
		}
		if err := b.call(ctx, b.session, "Input.dispatchKeyEvent", map[string]any{"type": "keyUp", "key": s}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Screenshot is a PNG of the whole page.
func (b *Browser) Screenshot(ctx context.Context) ([]byte, error) {
	var shot struct {
		Data string `json:"data"`
	}
	if err := b.call(ctx, b.session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(shot.Data)
}

func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// lineWriter keeps Chromium's stderr lines in the browser's log.
type lineWriter struct {
	b   *Browser
	mu  sync.Mutex
	buf []byte
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
		// No D-Bus in the namespace: Chromium's complaints about it are noise.
		if line := string(w.buf[:i]); !strings.Contains(line, "dbus") {
			w.b.add(&w.b.log, "chromium: "+line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Serve serves h over HTTP on a listener made inside the namespace, on the
// lab's address and a free port, and returns its base URL
// (http://198.18.0.1:PORT). t.Cleanup closes the server and waits for it.
func (l *Lab) Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	var ln net.Listener
	if err := l.inside(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(l.Addr, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// ArtifactDir is $ARTIFACTS, or a directory under the system's temporary
// directory that outlives the test (bugoutlab-artifacts), for screenshots.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "bugoutlab-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
