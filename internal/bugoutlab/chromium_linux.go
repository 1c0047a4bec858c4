package bugoutlab

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/chromium"
)

// ChromiumEnv names another Chromium binary for the lab's browser (see
// [chromium.Path]).
const ChromiumEnv = "BUGOUTLAB_CHROMIUM"

// StartChromium runs headless Chromium (internal/chromium) inside the
// namespace, where the only addresses are loopback and the lab's; every
// host name resolves to nothing (--host-resolver-rules), so a stray lookup
// fails inside the browser. It opens one blank page of width×height.
// t.Cleanup closes the browser.
func (l *Lab) StartChromium(t testing.TB, ctx context.Context, width, height int) *chromium.Browser {
	t.Helper()
	b, err := chromium.Start(ctx, t, chromium.Options{
		Binary: chromium.Path(t, ChromiumEnv),
		Wrap:   []string{"ip", "netns", "exec", l.NS.Name()},
		// The page and the tracker are the lab's IP literal; any name is a
		// stray one (IP literals go through the rules too, hence EXCLUDE).
		HostResolverRules: "MAP * ~NOTFOUND, EXCLUDE " + l.Addr,
		Width:             width,
		Height:            height,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
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
