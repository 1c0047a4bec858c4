package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A minimal Chrome DevTools Protocol client over the WebSocket library we
// already use: enough to open a page, watch its network requests, evaluate
// expressions and take a screenshot. (chromedp would pull in cdproto, some
// 100k lines, for these five methods.)
type cdpMsg struct {
	ID        int                       `json:"id,omitempty"`
	Method    string                    `json:"method,omitempty"`
	Params    json.RawMessage           `json:"params,omitempty"`
	Result    json.RawMessage           `json:"result,omitempty"`
	Error     *struct{ Message string } `json:"error,omitempty"`
	SessionID string                    `json:"sessionId,omitempty"`
}

type cdp struct {
	ws      *websocket.Conn
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMsg
	events  chan cdpMsg
	done    chan struct{}
}

func dialCDP(ctx context.Context, u string) (*cdp, error) {
	ws, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(64 << 20) // screenshots
	c := &cdp{ws: ws, pending: map[int]chan cdpMsg{}, events: make(chan cdpMsg, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m cdpMsg
			if json.Unmarshal(b, &m) != nil {
				continue
			}
			if m.ID != 0 {
				c.mu.Lock()
				ch := c.pending[m.ID]
				delete(c.pending, m.ID)
				c.mu.Unlock()
				if ch != nil {
					ch <- m
				}
				continue
			}
			select {
			case c.events <- m:
			default: // nobody reads that many events; drop
			}
		}
	}()
	return c, nil
}

func (c *cdp) call(ctx context.Context, session, method string, params any, result any) error {
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMsg, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	p, _ := json.Marshal(params)
	msg, _ := json.Marshal(cdpMsg{ID: id, Method: method, Params: p, SessionID: session})
	if err := c.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	case <-c.done:
		return fmt.Errorf("%s: browser connection closed", method)
	}
}

func (c *cdp) close() {
	c.ws.CloseNow()
	<-c.done
}

// startChromium runs headless Chromium with remote debugging on loopback,
// resolving every host name but 127.0.0.1 to nothing, and returns its
// DevTools WebSocket URL. The test ends it (its process group, by PID).
func startChromium(t *testing.T) string {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not installed (apt-get install chromium)")
		}
		t.Skip("chromium not installed")
	}
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+profile, "--window-size=1200,1500", "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "DevTools listening on "); ok {
				found <- strings.TrimSpace(u)
			}
		}
	}()
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	select {
	case u := <-found:
		return u
	case <-exited:
		t.Fatal("chromium exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start within 30s")
	}
	return ""
}

// artifactDir is $ARTIFACTS, or a directory under the system's temporary
// directory that outlives the test, so the screenshot can be looked at.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "signald-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDashboardInChromium loads the dashboard in headless Chromium, sees
// its figures change as test clients announce, checks that the page asked
// nothing of any host but the Box, and stores a screenshot.
func TestDashboardInChromium(t *testing.T) {
	devtools := startChromium(t)
	d := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dialCDP(ctx, devtools)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	var target struct{ TargetID string }
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		t.Fatal(err)
	}
	var att struct{ SessionID string }
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		t.Fatal(err)
	}
	s := att.SessionID
	for _, m := range []string{"Network.enable", "Page.enable", "Runtime.enable"} {
		if err := c.call(ctx, s, m, map[string]any{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.call(ctx, s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1200, "height": 1500, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}
	// Every request the page makes, to check where they went.
	var mu sync.Mutex
	var requests, consoleErrors []string
	evDone := make(chan struct{})
	evCtx, evCancel := context.WithCancel(context.Background())
	go func() {
		defer close(evDone)
		for {
			select {
			case m := <-c.events:
				switch m.Method {
				case "Network.requestWillBeSent":
					var p struct{ Request struct{ URL string } }
					json.Unmarshal(m.Params, &p)
					mu.Lock()
					requests = append(requests, p.Request.URL)
					mu.Unlock()
				case "Network.webSocketCreated":
					var p struct{ URL string }
					json.Unmarshal(m.Params, &p)
					mu.Lock()
					requests = append(requests, p.URL)
					mu.Unlock()
				case "Runtime.exceptionThrown", "Log.entryAdded":
					mu.Lock()
					consoleErrors = append(consoleErrors, string(m.Params))
					mu.Unlock()
				}
			case <-evCtx.Done():
				return
			}
		}
	}()
	defer func() { evCancel(); <-evDone }()

	if err := c.call(ctx, s, "Page.navigate", map[string]any{"url": "http://" + d.addr + "/"}, nil); err != nil {
		t.Fatal(err)
	}
	eval := func(expr string) string {
		var r struct {
			Result struct{ Value any }
		}
		if err := c.call(ctx, s, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(r.Result.Value)
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

	var shot struct{ Data string }
	if err := c.call(ctx, s, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot); err != nil {
		t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %v, %d bytes", err, len(png))
	}
	path := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	mu.Lock()
	defer mu.Unlock()
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
	for _, e := range consoleErrors {
		if strings.Contains(e, `"level":"error"`) || strings.Contains(e, "exceptionDetails") {
			t.Errorf("page error: %s", e)
		}
	}
}
