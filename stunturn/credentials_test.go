package stunturn

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestNewCredentials(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	user, pass := NewCredentials([]byte("secret"), "alice", time.Hour, now)
	if user != "1700003600:alice" {
		t.Errorf("username = %q, want 1700003600:alice", user)
	}
	m := hmac.New(sha1.New, []byte("secret"))
	m.Write([]byte(user))
	if want := base64.StdEncoding.EncodeToString(m.Sum(nil)); pass != want {
		t.Errorf("password = %q, want %q", pass, want)
	}
	exp, u, ok := parseREST(user)
	if !ok || u != "alice" || !exp.Equal(now.Add(time.Hour)) {
		t.Errorf("parseREST(%q) = %v, %q, %v", user, exp, u, ok)
	}
	for _, bad := range []string{"alice", ":alice", "12a:alice", "alice:1700003600", "1234567890123:x"} {
		if _, _, ok := parseREST(bad); ok {
			t.Errorf("parseREST(%q) ok, want not a REST username", bad)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "turn.secret")
	s1, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != SecretSize {
		t.Errorf("secret is %d bytes, want %d", len(s1), SecretSize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	s2, err := LoadOrCreateSecret(path)
	if err != nil || string(s1) != string(s2) {
		t.Errorf("second load = %x, %v; want the first secret", s2, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(path); err == nil {
		t.Error("loaded a world-readable secret")
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(short); err == nil {
		t.Error("loaded a 4-byte secret")
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := NewServer(Config{
		ListenUDP: []string{}, ListenTCP: []string{}, ListenTLS: []string{":5349"},
		RelayPortMin: 5000, RelayPortMax: 4000,
		Secrets:      [][]byte{[]byte("short")},
		StaticUsers:  map[string]string{"123:bob": "x"},
		RelayAddress: []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
	})
	if err == nil {
		t.Fatal("NewServer accepted a bad config")
	}
	for _, want := range []string{"need a TLS config", "relay port range 5000-4000", "secret 0", `"123:bob"`, "not IPv4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestICEHandler(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := NewICEHandler(ICEConfig{
		URLs:         []string{"stun:box.example:3478", "turn:box.example:3478?transport=udp", "turns:box.example:5349?transport=tcp"},
		Secret:       testSecret,
		TTL:          time.Hour,
		AllowOrigins: []string{"https://app.example"},
		Now:          func() time.Time { return now },
	})
	req := httptest.NewRequest(http.MethodGet, "/ice", nil)
	req.RemoteAddr = "[2001:db8:1:2:3::4]:5555"
	req.Header.Set("Origin", "https://app.example")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("GET /ice = %d", w.Code)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Errorf("Access-Control-Allow-Origin = %q", got)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	var resp ICEResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.TTL != 3600 || len(resp.IceServers) != 2 {
		t.Fatalf("response = %+v", resp)
	}
	if s := resp.IceServers[0]; len(s.URLs) != 1 || s.Username != "" {
		t.Errorf("stun entry = %+v", s)
	}
	turn := resp.IceServers[1]
	wantUser, wantPass := NewCredentials(testSecret, "2001:db8:1:2::/64", time.Hour, now)
	if turn.Username != wantUser || turn.Credential != wantPass || len(turn.URLs) != 2 {
		t.Errorf("turn entry = %+v, want user %q", turn, wantUser)
	}

	// Other origins get no CORS grant; preflight; wrong method.
	req = httptest.NewRequest(http.MethodGet, "/ice", nil)
	req.Header.Set("Origin", "https://evil.example")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("Access-Control-Allow-Origin for another origin = %q", got)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodOptions, "/ice", nil))
	if w.Code != http.StatusNoContent {
		t.Errorf("OPTIONS /ice = %d", w.Code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/ice", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ice = %d", w.Code)
	}
}

// TestICECredentialsWork: credentials from the handler allocate on a server
// with the same secret.
func TestICECredentialsWork(t *testing.T) {
	s := newTestServer(t, Config{})
	h := NewICEHandler(ICEConfig{URLs: []string{"turn:127.0.0.1"}, Secret: testSecret, AllowOrigins: []string{"*"}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ice", nil))
	var resp ICEResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	ice := resp.IceServers[0]
	if resp.TTL != int64(DefaultICETTL/time.Second) {
		t.Errorf("ttl = %d", resp.TTL)
	}
	if _, code := dialTURN(t, "udp", s.udp(), ice.Username, ice.Credential).allocate(protoUDP, famV4); code != 0 {
		t.Errorf("Allocate with /ice credentials = %d", code)
	}
}

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if _, err := newMetrics(reg); err == nil {
		t.Error("second registration on one registry succeeded")
	}
}
