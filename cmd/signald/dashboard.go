package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The dashboard is one HTML page, one script and one style sheet, all
// embedded and served from the Box itself: it works with no Internet
// access, and its Content-Security-Policy forbids anything else.
//
//go:embed web/index.html web/dashboard.js web/dashboard.css
var webFS embed.FS

var indexTmpl = template.Must(template.New("index.html").Funcs(template.FuncMap{
	"num":   func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
	"bytes": formatBytes,
}).ParseFS(webFS, "web/index.html"))

// formatBytes is what dashboard.js shows before the first live sample.
func formatBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// pageURLs are the Box's URLs as a page that reached it at r.Host should
// use them: -public-host replaces the host, the port stays the one the
// request came to (the router's, when it forwards another port).
type pageURLs struct {
	Announce []string // tracker URLs for new Bugout(room, {announce})
	Base     string   // http(s)://host[:port]
	ICE      string   // Base + "/ice", when TURN is on
	BoxJSON  string   // Base + "/box.json"
	BugoutJS string   // Base + "/bugout.js"
}

func (b *box) pageURLs(r *http.Request) pageURLs {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	if b.cfg.PublicHost != "" {
		host = b.cfg.PublicHost
	}
	hp := strings.Trim(host, "[]")
	if strings.Contains(hp, ":") {
		hp = "[" + hp + "]"
	}
	if port != "" {
		hp = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	web := "http"
	if b.tls() {
		web = "https"
	}
	u := pageURLs{Announce: []string{b.trackerURL(hp)}, Base: web + "://" + hp}
	if b.ice != nil {
		u.ICE = u.Base + "/ice"
	}
	u.BoxJSON = u.Base + "/box.json"
	u.BugoutJS = u.Base + "/bugout.js"
	return u
}

func (b *box) mountDashboard(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", b.serveIndex)
	for _, f := range []struct{ path, file, ctype string }{
		{"/dashboard.js", "web/dashboard.js", "text/javascript; charset=utf-8"},
		{"/dashboard.css", "web/dashboard.css", "text/css; charset=utf-8"},
	} {
		body, err := webFS.ReadFile(f.file)
		if err != nil {
			panic(err) // embedded above
		}
		mux.HandleFunc("GET "+f.path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", f.ctype)
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Write(body)
		})
	}
	mux.HandleFunc("GET /events", b.serveEvents)
	mux.HandleFunc("GET /admin/config.json", b.requireAdmin(b.serveAdminConfig))
}

func (b *box) serveIndex(w http.ResponseWriter, r *http.Request) {
	u := b.pageURLs(r)
	announce, _ := json.Marshal(u.Announce)
	snippet := fmt.Sprintf("const {announce, iceServers} = await (await fetch(%q)).json()\nconst bugout = new Bugout(\"my-room\", {announce, iceServers})", u.BoxJSON)
	static := fmt.Sprintf("new Bugout(\"my-room\", {announce: %s})", announce)
	if u.ICE != "" {
		static = fmt.Sprintf("new Bugout(\"my-room\", {\n  announce: %s,\n  iceServers: (await (await fetch(%q)).json()).iceServers,\n})", announce, u.ICE)
	}
	script := fmt.Sprintf("<script src=%q></script>\n<script>\n  BoxSignal.options().then(opts => { window.bugout = new Bugout(\"my-room\", opts) })\n</script>", u.BugoutJS)
	last, _ := b.samples.latest()
	data := map[string]any{
		"URLs":          u,
		"TURN":          b.turn != nil,
		"TLS":           b.tls(),
		"Snippet":       snippet,
		"StaticSnippet": static,
		"ScriptSnippet": script,
		"Last":          last,
		"Started":       b.started.UTC().Format(time.RFC3339),
	}
	if b.turn != nil {
		a := b.turn.Addrs()
		data["TURNAddrs"] = fmt.Sprintf("UDP %v, TCP %v, TLS %v; relay ports %s (UDP)", addrPorts(a.UDP), addrPorts(a.TCP), addrPorts(a.TLS), b.cfg.TURNRelayPorts)
	}
	var buf bytes.Buffer
	if err := indexTmpl.Execute(&buf, data); err != nil {
		b.log.Error("dashboard template", "err", err)
		http.Error(w, "dashboard unavailable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.Write(buf.Bytes())
}

func addrPorts(as []net.Addr) string {
	if len(as) == 0 {
		return "off"
	}
	var ports []string
	for _, a := range as {
		_, p, _ := net.SplitHostPort(a.String())
		ports = append(ports, p)
	}
	return strings.Join(ports, ",")
}

// serveEvents is the dashboard's live feed (Server-Sent Events): first an
// "history" event with the samples kept, then one message per sample.
func (b *box) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	hist, ch, ok := b.samples.subscribe()
	if !ok {
		http.Error(w, "too many dashboards open", http.StatusServiceUnavailable)
		return
	}
	defer b.samples.unsubscribe(ch)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	hj, _ := json.Marshal(hist)
	fmt.Fprintf(w, "retry: 2000\nevent: history\ndata: %s\n\n", hj)
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case s, ok := <-ch:
			if !ok {
				return // draining
			}
			j, _ := json.Marshal(s)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", j); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
