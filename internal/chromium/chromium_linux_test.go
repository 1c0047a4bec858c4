package chromium

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	args := Args("/tmp/profile", Options{HostResolverRules: "MAP * ~NOTFOUND", Width: 800, Height: 600})
	n := 0
	for _, a := range args {
		if strings.HasPrefix(a, "--disable-features=") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d --disable-features switches, want 1 (Chromium honours only the last)", n)
	}
	for _, want := range []string{"--headless", "--no-sandbox", "--remote-debugging-pipe", "--user-data-dir=/tmp/profile",
		"--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=800,600"} {
		if !strings.Contains(strings.Join(args, "\n")+"\n", want+"\n") {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if args[len(args)-1] != "about:blank" {
		t.Errorf("last arg %q, want about:blank", args[len(args)-1])
	}
}

const testPage = `<!doctype html><title>t</title>
<input id="in"> <button id="go" onclick="document.getElementById('out').textContent = document.getElementById('in').value; setTimeout(() => { throw new Error('boom') })">go</button>
<p id="out"></p>`

// TestBrowser drives a page through every action the tests use.
func TestBrowser(t *testing.T) {
	bin := Path(t, "CHROMIUM")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, testPage)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	b, err := Start(ctx, t, Options{Binary: bin, HostResolverRules: "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", Width: 640, Height: 480})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("browser log:\n%s", b.Log())
		}
	}()
	if err := b.Navigate(ctx, srv.URL+"/page"); err != nil {
		t.Fatal(err)
	}
	// A same-document navigation: no new document to wait for.
	if err := b.Navigate(ctx, srv.URL+"/page#hash"); err != nil {
		t.Fatal(err)
	}
	if err := b.Click(ctx, "#in"); err != nil {
		t.Fatal(err)
	}
	if err := b.Type(ctx, "héllo"); err != nil {
		t.Fatal(err)
	}
	if err := b.Click(ctx, "#go"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFor(ctx, "the typed text", `document.getElementById("out").textContent === "héllo"`); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = b.WaitFor(wctx, "nothing", `false`)
	wcancel()
	if err == nil || !strings.Contains(err.Error(), "waiting for nothing") {
		t.Errorf("WaitFor(false) = %v, want a timeout", err)
	}
	if err := b.Eval(ctx, `Promise.reject(new Error("rejected"))`, nil); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Errorf("Eval of a rejected promise: %v, want the error", err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	var out string
	if err := b.Eval(ctx, `document.getElementById("out").textContent`, &out); err != nil || out != "" {
		t.Errorf("after reload: %q, %v; want an empty new document", out, err)
	}
	png, err := b.Screenshot(ctx)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot: %v, %d bytes", err, len(png))
	}
	if reqs := b.Requests(); len(reqs) < 2 || reqs[0] != srv.URL+"/page" {
		t.Errorf("requests %q, want the page twice", reqs)
	}
	if ex := b.Exceptions(); len(ex) != 1 || !strings.Contains(ex[0], "boom") {
		t.Errorf("exceptions %q, want boom", ex)
	}
	if !strings.Contains(b.Log(), "exception: ") {
		t.Errorf("log lacks the exception:\n%s", b.Log())
	}
}
