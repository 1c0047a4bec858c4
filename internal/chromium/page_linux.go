package chromium

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// call sends method to the page's session.
func (b *Browser) call(ctx context.Context, method string, params, out any) error {
	return b.cdp.call(ctx, b.session, method, params, out)
}

// event records the page's requests, console messages and exceptions.
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
			e := p.ExceptionDetails.Text + " " + p.ExceptionDetails.Exception.Description
			b.add(&b.exceptions, e)
			b.add(&b.log, "exception: "+e)
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

// Log is what the page logged (console.TYPE: and exception: lines) and
// Chromium printed (chromium: lines), for failure reports.
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

// Exceptions are the page's uncaught exceptions: text and description.
func (b *Browser) Exceptions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.exceptions...)
}

// Navigate loads url in the page and waits until the new document is
// complete. Until the navigation commits, the old document (about:blank,
// say) is still there and may well be complete, so it waits for another
// one (only for a complete document when the navigation stays in the same
// document, a change of #hash).
func (b *Browser) Navigate(ctx context.Context, url string) error {
	before := b.timeOrigin(ctx)
	var nav struct {
		LoaderID  string `json:"loaderId"` // omitted for a same-document navigation
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("navigate to %s: %s", url, nav.ErrorText)
	}
	if nav.LoaderID == "" {
		return b.WaitFor(ctx, "the document to load", `document.readyState === "complete"`)
	}
	return b.waitNewDocument(ctx, "the document to load", before)
}

// Reload reloads the page, as the browser's reload button does, and waits
// until the new document is complete.
func (b *Browser) Reload(ctx context.Context) error {
	// The old document must be gone before readyState is read again.
	before := b.timeOrigin(ctx)
	if err := b.call(ctx, "Page.reload", map[string]any{"ignoreCache": true}, nil); err != nil {
		return err
	}
	return b.waitNewDocument(ctx, "the reloaded document", before)
}

// timeOrigin is the document's performance.timeOrigin, which tells one
// document from the next; "" if it cannot be read.
func (b *Browser) timeOrigin(ctx context.Context) string {
	var origin string
	_ = b.Eval(ctx, `String(performance.timeOrigin)`, &origin)
	return origin
}

// waitNewDocument waits until the page's document is another than the one
// whose performance.timeOrigin was before, and complete.
func (b *Browser) waitNewDocument(ctx context.Context, what, before string) error {
	return b.WaitFor(ctx, what, `String(performance.timeOrigin) !== `+jsString(before)+` && document.readyState === "complete"`)
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

// Eval evaluates a JavaScript expression in the page, awaits it if it is a
// promise, and decodes its value (JSON) into out, if not nil. An exception
// is the error.
func (b *Browser) Eval(ctx context.Context, expr string, out any) error {
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
	if err := b.call(ctx, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
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
		if err := b.call(ctx, "Input.dispatchMouseEvent", ev, nil); err != nil {
			return fmt.Errorf("click %s: %w", selector, err)
		}
	}
	return nil
}

// Type types text into the focused element, one key press per character.
func (b *Browser) Type(ctx context.Context, text string) error {
	for _, r := range text {
		s := string(r)
		if err := b.call(ctx, "Input.dispatchKeyEvent", map[string]any{"type": "keyDown", "key": s, "text": s, "unmodifiedText": s}, nil); err != nil {
			return err
		}
		if err := b.call(ctx, "Input.dispatchKeyEvent", map[string]any{"type": "keyUp", "key": s}, nil); err != nil {
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
	if err := b.call(ctx, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(shot.Data)
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
