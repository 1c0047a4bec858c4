package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// nbio's websocket package starts a task pool at init; it is not ours.
func TestMain(m *testing.M) {
	sampleInterval = 100 * time.Millisecond // the dashboard's figures move within a test's patience
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// daemon runs signald in-process until the test ends.
type daemon struct {
	addr   string
	cancel context.CancelFunc
	done   chan int
	hup    chan os.Signal
	out    *syncBuf
	logs   *syncBuf
}

func start(t *testing.T, args ...string) *daemon {
	t.Helper()
	// Port 0: the daemon binds a free port and prints it in its URLs, so
	// no other process can take the port between a probe and the bind.
	d := &daemon{addr: "127.0.0.1:0", done: make(chan int), hup: make(chan os.Signal, 1), out: new(syncBuf), logs: new(syncBuf)}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	args = append([]string{"-addr", d.addr, "-drain-timeout", "2s",
		"-turn-udp", "127.0.0.1:0", "-turn-tcp", "127.0.0.1:0", "-turn-tls", "127.0.0.1:0", "-data-dir", t.TempDir()}, args...)
	go func() { d.done <- run(ctx, args, func(string) string { return "" }, nil, d.hup, d.out, d.logs) }()
	// Bounds on waits, not timings: a loaded 2-CPU CI machine is slow.
	deadline := time.Now().Add(20 * time.Second)
	for !boundAddr.MatchString(d.out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("signald did not start; logs:\n%s", d.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.addr = "127.0.0.1:" + boundAddr.FindStringSubmatch(d.out.String())[1]
	t.Cleanup(func() { d.stop(t) })
	return d
}

// boundAddr finds the port in the announce URL printed at start.
var boundAddr = regexp.MustCompile(`Announce URLs[^\n]*\n\s+wss?://127\.0\.0\.1:(\d+)`)

func (d *daemon) stop(t *testing.T) int {
	d.cancel()
	select {
	case rc, ok := <-d.done:
		if ok {
			close(d.done)
		}
		return rc
	case <-time.After(20 * time.Second):
		t.Fatal("signald did not stop within 20s of SIGTERM")
	}
	return -1
}

func announceOK(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := `{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"-WW0109-bbbbbbbbbbbb","event":"started","left":0,"numwant":0,"offers":[]}`
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["interval"] != float64(120) {
		t.Fatalf("announce reply %s", b)
	}
	return m
}

func TestServesTrackerAndEndpoints(t *testing.T) {
	d := start(t)
	if !strings.Contains(d.out.String(), "ws://127.0.0.1:") {
		t.Errorf("start output lacks the announce URL:\n%s", d.out.String())
	}
	ws, _, err := websocket.Dial(context.Background(), "ws://"+d.addr+"/announce", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	announceOK(t, ws)

	get := func(path string) string {
		resp, err := http.Get("http://" + d.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return string(b)
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
	metrics := get("/metrics")
	for _, want := range []string{"signald_tracker_peers 1", "signald_tracker_connections 1", `signald_tracker_announces_total{event="started"} 1`, "process_resident_memory_bytes"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	var st map[string]any
	json.Unmarshal([]byte(get("/stats.json")), &st)
	if st["torrents"] != float64(1) || st["peersSeederOnly"] != float64(1) || st["clients"].(map[string]any)["WebTorrent"] == nil {
		t.Errorf("/stats.json = %v", st)
	}
	if got := get("/"); !strings.Contains(got, "ws://") {
		t.Errorf("/ = %q", got)
	}
}

func TestDrainSendsCloseFrames(t *testing.T) {
	d := start(t)
	ws, _, err := websocket.Dial(context.Background(), "ws://"+d.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	announceOK(t, ws)
	closed := make(chan error, 1)
	go func() { _, _, err := ws.Read(context.Background()); closed <- err }()
	if rc := d.stop(t); rc != 0 {
		t.Fatalf("exit code %d; logs:\n%s", rc, d.logs.String())
	}
	err = <-closed
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("client saw %v, want a 1001 close frame", err)
	}
}

func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func servedCN(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestTLSAndCertReloadOnHUP(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "first")
	d := start(t, "-tls-cert", cert, "-tls-key", key)
	if !strings.Contains(d.out.String(), "wss://127.0.0.1:") {
		t.Errorf("start output lacks the wss URL:\n%s", d.out.String())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	ws, _, err := websocket.Dial(context.Background(), "wss://"+d.addr, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	announceOK(t, ws)
	ws.Close(websocket.StatusNormalClosure, "")
	if cn := servedCN(t, d.addr); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	writeCert(t, dir, "second")
	d.hup <- os.Interrupt // any value: the daemon reloads on receipt
	deadline := time.Now().Add(3 * time.Second)
	for servedCN(t, d.addr) != "second" {
		if time.Now().After(deadline) {
			t.Fatalf("certificate not reloaded; logs:\n%s", d.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	client.CloseIdleConnections()
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "signald.toml")
	os.WriteFile(file, []byte("# a Box\nmax-offers = 7\ninterval = \"60s\"\nannounce-rate = 5\nlog-level = \"warn\"\n"), 0o600)
	env := []string{"SIGNALD_INTERVAL=90s", "SIGNALD_CONFIG=" + file, "PATH=/bin"}
	getenv := func(k string) string {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return kv[len(k)+1:]
			}
		}
		return ""
	}
	cfg, src, err := loadConfig([]string{"-announce-rate", "9"}, getenv, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxOffers != 7 || cfg.Interval != 90*time.Second || cfg.AnnounceRate != 9 || cfg.LogLevel != "warn" || cfg.MaxSDPBytes != 16<<10 {
		t.Fatalf("config %+v", cfg)
	}
	if src["max-offers"] != "file "+file+":2" || src["interval"] != "env SIGNALD_INTERVAL" || src["announce-rate"] != "flag" || src["max-sdp-bytes"] != "default" {
		t.Fatalf("sources %v", src)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		args, env  []string
		want       string
	}{
		{name: "unknown key", file: "addr = \":1\"\n\nmax-ofers = 3\n", want: `:3: unknown key "max-ofers"`},
		{name: "bad value", file: "max-offers = \"many\"\n", want: `:1: max-offers = "many"`},
		{name: "syntax", file: "max-offers = = 3\n", want: ":1:"},
		{name: "unknown env", env: []string{"SIGNALD_NOPE=1"}, want: "SIGNALD_NOPE: no such option"},
		{name: "bad flag", args: []string{"-interval", "soon"}, want: "invalid value"},
		{name: "lone cert", args: []string{"-tls-cert", "x.pem"}, want: "tls-cert and tls-key go together"},
		{name: "bad level", args: []string{"-log-level", "loud"}, want: "log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
				os.WriteFile(f, []byte(tc.file), 0o600)
				args = append(args, "-config", f)
			}
			_, _, err := loadConfig(args, func(string) string { return "" }, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadConfig = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestBadTrackerConfigExits(t *testing.T) {
	var out, logs syncBuf
	rc := run(context.Background(), []string{"-addr", freeAddr(t), "-max-sdp-bytes", "100000", "-turn=false"}, func(string) string { return "" }, nil, nil, &out, &logs)
	if rc == 0 || !strings.Contains(logs.String(), "max SDP bytes") {
		t.Fatalf("rc %d, stderr %q", rc, logs.String())
	}
}
