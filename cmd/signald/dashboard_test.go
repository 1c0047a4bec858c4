package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testPeer is a WebSocket tracker client in one swarm that drains what the
// tracker sends it.
type testPeer struct {
	ws   *websocket.Conn
	done chan struct{}
}

const testInfoHash = "qqqqqqqqqqqqqqqqqqqq" // must never appear on the public dashboard

// joinSwarm connects a peer to the Box at addr and announces with offers,
// which the tracker relays to the peers already in the swarm.
func joinSwarm(t *testing.T, addr string, n, offers int) *testPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	var offs []string
	for i := range offers {
		offs = append(offs, fmt.Sprintf(`{"offer":{"type":"offer","sdp":"v=0 test"},"offer_id":"offer%015d"}`, n*100+i))
	}
	msg := fmt.Sprintf(`{"action":"announce","info_hash":%q,"peer_id":"-WW0109-%012d","event":"started","left":0,"numwant":%d,"offers":[%s]}`,
		testInfoHash, n, offers, strings.Join(offs, ","))
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	p := &testPeer{ws: ws, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *testPeer) close() {
	p.ws.Close(websocket.StatusNormalClosure, "")
	<-p.done
}

func httpGet(t *testing.T, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var urlRE = regexp.MustCompile(`(?i)\b(?:https?|wss?)://[^\s"'<>)\\&]+`)

// foreignURLs lists the absolute URLs in text that point anywhere but the
// Box at addr.
func foreignURLs(text, addr string) []string {
	var out []string
	for _, u := range urlRE.FindAllString(text, -1) {
		p, err := url.Parse(u)
		if err != nil || p.Host != addr {
			out = append(out, u)
		}
	}
	return out
}

func adminTokenOf(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`Admin token for the dashboard \(shown once; kept in [^)]*\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("start output prints no admin token:\n%s", out)
	}
	return m[1]
}

func TestDashboardPageIsSelfContained(t *testing.T) {
	d := start(t)
	resp, page := httpGet(t, "http://"+d.addr+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q does not confine the page to its origin", csp)
	}
	for _, want := range []string{"ws://" + d.addr, "http://" + d.addr + "/ice", "http://" + d.addr + "/box.json", "new Bugout(", "not configured"} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	for _, asset := range []string{"/", "/dashboard.js", "/dashboard.css", "/bugout.js"} {
		_, body := httpGet(t, "http://"+d.addr+asset)
		if f := foreignURLs(body, d.addr); len(f) > 0 {
			t.Errorf("%s references other hosts: %q", asset, f)
		}
		for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
			if asset == "/" && !strings.HasPrefix(m[1], "/") || strings.HasPrefix(m[1], "//") {
				t.Errorf("%s loads %q, not a same-origin path", asset, m[1])
			}
		}
		if strings.Contains(body, "@import") || strings.Contains(body, "url(") {
			t.Errorf("%s imports a resource", asset)
		}
	}
	// Without the dashboard, / is the plain hint it was.
	d2 := start(t, "-dashboard=false")
	if _, body := httpGet(t, "http://"+d2.addr+"/"); !strings.HasPrefix(body, "Box Signal tracker.") {
		t.Errorf("-dashboard=false: / = %q", body)
	}
	if resp, _ := httpGet(t, "http://"+d2.addr+"/events"); resp.StatusCode != 404 {
		t.Errorf("-dashboard=false: /events %s", resp.Status)
	}
}

// feed reads the dashboard's live feed.
type feed struct {
	cancel context.CancelFunc
	events chan [2]string // event name, data
	done   chan struct{}
}

func openFeed(t *testing.T, addr string) *feed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("/events Content-Type %q", ct)
	}
	f := &feed{cancel: cancel, events: make(chan [2]string, 64), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		event := "message"
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				select {
				case f.events <- [2]string{event, strings.TrimPrefix(line, "data: ")}:
				case <-ctx.Done():
					return
				}
				event = "message"
			}
		}
	}()
	t.Cleanup(func() { f.cancel(); <-f.done })
	return f
}

// until reads samples until ok accepts one, or fails the test after 10 s.
func (f *feed) until(t *testing.T, what string, ok func(sample) bool) sample {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var last sample
	for {
		select {
		case ev := <-f.events:
			if ev[0] != "message" {
				continue
			}
			if err := json.Unmarshal([]byte(ev[1]), &last); err != nil {
				t.Fatalf("feed data %q: %v", ev[1], err)
			}
			if ok(last) {
				return last
			}
		case <-deadline:
			t.Fatalf("feed never showed %s; last sample %+v", what, last)
		}
	}
}

func TestDashboardFeedFollowsTheTracker(t *testing.T) {
	d := start(t)
	f := openFeed(t, d.addr)
	select {
	case ev := <-f.events:
		if ev[0] != "history" || !strings.HasPrefix(ev[1], "[") {
			t.Fatalf("first event %q %q, want the history", ev[0], ev[1])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no history event")
	}
	f.until(t, "an idle Box", func(s sample) bool { return s.Connections == 0 && s.RSSBytes > 0 })
	joinSwarm(t, d.addr, 1, 0)
	joinSwarm(t, d.addr, 2, 0)
	joinSwarm(t, d.addr, 3, 2) // its two offers go to peers 1 and 2
	got := f.until(t, "three peers in one swarm and offers relayed", func(s sample) bool {
		return s.Connections == 3 && s.Peers == 3 && s.Swarms == 1 && s.OffersPerSec > 0
	})
	t.Logf("sample %+v", got)
	for _, path := range []string{"/", "/events"} {
		var body string
		if path == "/events" {
			ev := <-f.events
			body = ev[1]
		} else {
			_, body = httpGet(t, "http://"+d.addr+path)
		}
		if strings.Contains(body, testInfoHash) || strings.Contains(body, "-WW0109-") {
			t.Errorf("public %s shows a room or a peer", path)
		}
	}
}

func TestDashboardAdminNeedsToken(t *testing.T) {
	dir := t.TempDir()
	d := start(t, "-data-dir", dir, "-turn-static-users", "alice:wonderland")
	token := adminTokenOf(t, d.out.String())
	if b, _ := os.ReadFile(filepath.Join(dir, "admin-token")); strings.TrimSpace(string(b)) != token {
		t.Fatalf("admin-token file %q, printed %q", b, token)
	}
	u := "http://" + d.addr + "/admin/config.json"
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong-token-wrong-token"}, {"Authorization", token}} {
		if resp, body := httpGet(t, u, hdr...); resp.StatusCode != 401 || strings.Contains(body, "wonderland") {
			t.Errorf("GET /admin/config.json with %q: %s %q", hdr, resp.Status, body)
		}
	}
	resp, body := httpGet(t, u, "Authorization", "Bearer "+token)
	if resp.StatusCode != 200 {
		t.Fatalf("with the token: %s", resp.Status)
	}
	var v adminView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range v.Options {
		if o.Name == "turn-static-users" {
			found = o.Value == "alice:wonderland" && o.Source == "flag" && o.Secret
		}
	}
	if !found || v.Friends != nil || v.DHT != nil || v.DataDir != dir || v.TURNKeys != 1 {
		t.Errorf("admin view %s", body)
	}
	for _, path := range []string{"/", "/box.json", "/bugout.js", "/stats.json"} {
		if _, body := httpGet(t, "http://"+d.addr+path); strings.Contains(body, "wonderland") || strings.Contains(body, token) {
			t.Errorf("public %s shows a secret", path)
		}
	}
	// The token is printed once; the next start says where it is.
	d.stop(t)
	d2 := start(t, "-data-dir", dir)
	if out := d2.out.String(); strings.Contains(out, token) || !strings.Contains(out, "Admin token for the dashboard: in "+filepath.Join(dir, "admin-token")) {
		t.Errorf("second start output:\n%s", out)
	}
}

func TestBoxJSONAndBugoutJS(t *testing.T) {
	d := start(t, "-ice-allow-origins", "https://app.example")
	resp, body := httpGet(t, "http://"+d.addr+"/box.json", "Origin", "https://app.example")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /box.json: %s, headers %v", resp.Status, resp.Header)
	}
	var bj boxJSON
	if err := json.Unmarshal([]byte(body), &bj); err != nil {
		t.Fatal(err)
	}
	turn := false
	for _, s := range bj.IceServers {
		turn = turn || (s.Username != "" && s.Credential != "" && strings.HasPrefix(s.URLs[0], "turn:"))
	}
	if len(bj.Announce) != 1 || bj.Announce[0] != "ws://"+d.addr || !turn || bj.TTL != 43200 {
		t.Fatalf("/box.json = %s", body)
	}
	// A page's ws client can use the announce URL as given.
	ws, _, err := websocket.Dial(context.Background(), bj.Announce[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	announceOK(t, ws)
	ws.CloseNow()

	_, js := httpGet(t, "http://"+d.addr+"/bugout.js")
	for _, want := range []string{`"ws://` + d.addr + `"`, `"http://` + d.addr + `/box.json"`, "g.BoxSignal", "options: function"} {
		if !strings.Contains(js, want) {
			t.Errorf("/bugout.js lacks %q:\n%s", want, js)
		}
	}
	// Without TURN, box.json still answers, with no ICE servers.
	d2 := start(t, "-turn=false")
	_, body = httpGet(t, "http://"+d2.addr+"/box.json")
	if !strings.Contains(body, `"iceServers":[]`) || !strings.Contains(body, "ws://"+d2.addr) {
		t.Errorf("-turn=false: /box.json = %s", body)
	}
}
