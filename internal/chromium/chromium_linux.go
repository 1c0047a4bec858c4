package chromium

import (
	"bytes"
	"context"
	"fmt"
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

// Path is Debian's Chromium binary itself, /usr/lib/chromium/chromium (not
// the /usr/bin/chromium launcher, which adds Google API keys and flags from
// /etc/chromium.d), or the binary that the environment variable env names
// (if env is not empty and set). Failing those it tries chromium,
// chromium-browser and google-chrome on $PATH. Without any it skips the
// test (fails it under CI=true, see [netns.Unavailable]).
func Path(t testing.TB, env string) string {
	t.Helper()
	if env != "" {
		if p := os.Getenv(env); p != "" {
			return p
		}
	}
	if _, err := os.Stat("/usr/lib/chromium/chromium"); err == nil {
		return "/usr/lib/chromium/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	hint := ""
	if env != "" {
		hint = ", or set " + env
	}
	netns.Unavailable(t, "chromium: Chromium is needed (Debian: apt-get install chromium)%s", hint)
	return ""
}

// DisabledFeatures are merged into the one --disable-features switch
// (Chromium honours only the last one given). Each would make the browser
// talk to Google or the local network on its own; WebRtcHideLocalIpsWithMdns
// would hide a page's host candidates behind .local names that Go peers
// (mDNS off) cannot resolve, and have Chromium join the mDNS group.
var DisabledFeatures = []string{
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

// Options says how to run a browser. The zero value runs Chromium from
// [Path] (no override variable) directly, at its default window size.
type Options struct {
	// Binary is the Chromium to run; empty means Path(t, "").
	Binary string
	// Wrap is a command that runs the browser for us, its arguments
	// following, e.g. {"ip", "netns", "exec", name} to run it inside a
	// network namespace. The wrapper must exec the browser (keeping the
	// PID), so that stopping it kills the browser's process group.
	Wrap []string
	// HostResolverRules is --host-resolver-rules, e.g. "MAP * ~NOTFOUND,
	// EXCLUDE 127.0.0.1" so that any host name but the page's fails inside
	// the browser. Empty: no rules.
	HostResolverRules string
	// Width and Height are the window's and the page's size; 0 leaves
	// Chromium's default.
	Width, Height int
	// Preferences, if not empty, is written to the profile's
	// Default/Preferences before the browser starts.
	Preferences string
}

// Args are the switches of a browser with profile userDataDir: headless, as
// root, with every background service that phones home turned off, driven
// over --remote-debugging-pipe, and one blank page.
func Args(userDataDir string, o Options) []string {
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
		"--disable-client-side-phishing-detection", "--disable-breakpad", "--no-pings",
		"--metrics-recording-only", "--safebrowsing-disable-auto-update",
		"--password-store=basic", "--mute-audio", "--disable-field-trial-config",
		"--disable-component-extensions-with-background-pages", "--no-service-autorun",
		"--disable-features=" + strings.Join(DisabledFeatures, ","),
	}
	if o.HostResolverRules != "" {
		args = append(args, "--host-resolver-rules="+o.HostResolverRules)
	}
	if o.Width > 0 && o.Height > 0 {
		args = append(args, fmt.Sprintf("--window-size=%d,%d", o.Width, o.Height))
	}
	return append(args, "--remote-debugging-pipe", "--user-data-dir="+userDataDir, "about:blank")
}

// Browser is a headless Chromium driven over a DevTools pipe, with one page.
type Browser struct {
	cmd     *exec.Cmd
	waited  chan struct{} // closed when cmd.Wait returned
	cdp     *cdp
	replies *os.File // the read end of the browser's fd 4
	session string   // the page's

	mu         sync.Mutex
	log        []string // console, exceptions, Chromium's own output
	requests   []string // every URL the page asked for (HTTP and WebSocket)
	exceptions []string // the page's uncaught exceptions
}

// Start runs Chromium with [Args] and opens one blank page, with the
// Runtime, Page and Network domains enabled (so [Browser.Log],
// [Browser.Requests] and [Browser.Exceptions] fill). The browser gets a
// temporary profile and home and nothing of the caller's environment
// (proxies, API keys). t.Cleanup stops it: Browser.close, then SIGKILL to
// its process group (by PID) after 5 s. An error after the browser started
// leaves it to that cleanup.
func Start(ctx context.Context, t testing.TB, o Options) (*Browser, error) {
	t.Helper()
	bin := o.Binary
	if bin == "" {
		bin = Path(t, "")
	}
	dir := t.TempDir()
	if o.Preferences != "" {
		if err := os.MkdirAll(filepath.Join(dir, "Default"), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(o.Preferences), 0o600); err != nil {
			return nil, err
		}
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
	b := &Browser{waited: make(chan struct{}), replies: outR}
	argv := append(append(append([]string(nil), o.Wrap...), bin), Args(dir, o)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"HOME=" + dir, "PATH=/usr/local/bin:/usr/bin:/bin", "XDG_CONFIG_HOME=" + dir, "XDG_CACHE_HOME=" + dir}
	cmd.ExtraFiles = []*os.File{cmdR, outW} // fd 3: commands in, fd 4: replies out
	out := &lineWriter{b: b}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second // its children may hold stderr open
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	cmdR.Close()
	outW.Close()
	if err != nil {
		cmdW.Close()
		outR.Close()
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	b.cmd = cmd
	go func() { cmd.Wait(); close(b.waited) }()
	b.cdp = newCDP(cmdW, outR, b.event)
	t.Cleanup(b.stop)

	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.cdp.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, fmt.Errorf("chromium: %w\n%s", err, b.Log())
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.cdp.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		return nil, fmt.Errorf("chromium: %w", err)
	}
	b.session = att.SessionID
	for _, m := range []string{"Runtime.enable", "Page.enable", "Network.enable"} {
		if err := b.call(ctx, m, nil, nil); err != nil {
			return nil, fmt.Errorf("chromium: %w", err)
		}
	}
	if o.Width > 0 && o.Height > 0 {
		if err := b.call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
			"width": o.Width, "height": o.Height, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
			return nil, fmt.Errorf("chromium: %w", err)
		}
	}
	return b, nil
}

// stop closes the browser: Browser.close, then SIGKILL to its process
// group (by the PID we started) if it has not exited within 5 s.
func (b *Browser) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = b.cdp.call(ctx, "", "Browser.close", nil, nil)
	cancel()
	b.cdp.close()
	select {
	case <-b.waited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.waited
	}
	// Children that inherited fd 4 could hold the pipe open: closing our
	// end ends the reader in any case.
	b.replies.Close()
	b.cdp.wait()
}

// ArtifactDir is $ARTIFACTS, or NAME-artifacts under the system's
// temporary directory, which outlives the test: where screenshots go.
func ArtifactDir(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), name+"-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// lineWriter keeps Chromium's own output lines in the browser's log.
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
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		// Often no D-Bus (and none in a namespace): Chromium's complaints
		// about it are noise.
		if line := string(w.buf[:i]); !strings.Contains(line, "dbus") {
			w.b.add(&w.b.log, "chromium: "+line)
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
