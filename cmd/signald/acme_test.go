package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pebbleVersion is the ACME test server (Let's Encrypt's) the test runs.
const pebbleVersion = "github.com/letsencrypt/pebble/v2@v2.10.3"

// buildPebble installs pebble and pebble-challtestsrv (its DNS server) from
// the module proxy into a temporary directory and returns that directory
// and the module's (its test certificates). Outside CI a failure skips.
func buildPebble(t *testing.T) (bindir, modDir string) {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") == "true" {
		fail = t.Fatalf
	}
	gobin := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", strings.Replace(pebbleVersion, "/v2@", "/v2/cmd/pebble@", 1),
		strings.Replace(pebbleVersion, "/v2@", "/v2/cmd/pebble-challtestsrv@", 1))
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fail("go install pebble: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMODCACHE").Output()
	if err != nil {
		fail("go env GOMODCACHE: %v", err)
	}
	modDir = filepath.Join(strings.TrimSpace(string(out)), filepath.FromSlash(pebbleVersion))
	return gobin, modDir
}

// startProcess runs a test server until the test ends (SIGTERM, then
// SIGKILL, to its PID) and waits for it to listen on addr.
func startProcess(t *testing.T, addr string, logs io.Writer, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited", filepath.Base(bin))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s", filepath.Base(bin), addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestACMECertificateFromPebble: with -acme-domain, signald gets its
// certificate from an ACME CA and serves wss:// with it. The CA is pebble
// on loopback; its DNS (pebble-challtestsrv) answers 127.0.0.1 for every
// name, and it validates by tls-alpn-01 against signald's own port.
func TestACMECertificateFromPebble(t *testing.T) {
	bindir, modDir := buildPebble(t)
	const domain = "box.signald.test"
	addr := freeAddr(t)
	_, boxPort, _ := net.SplitHostPort(addr)
	boxPortN, _ := strconv.Atoi(boxPort)

	dir := t.TempDir()
	var logs syncBuf
	dnsAddr, dnsMgmt := freeAddr(t), freeAddr(t)
	startProcess(t, dnsAddr, &logs, filepath.Join(bindir, "pebble-challtestsrv"), "-dnsserver", dnsAddr, "-management", dnsMgmt,
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	acmeAddr, mgmtAddr := freeAddr(t), freeAddr(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  acmeAddr,
		"managementListenAddress":        mgmtAddr,
		"certificate":                    filepath.Join(modDir, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(modDir, "test/certs/localhost/key.pem"),
		"httpPort":                       1, // http-01 is not offered: signald has no -acme-http-addr here
		"tlsPort":                        boxPortN,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	cfgFile := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(cfg)
	os.WriteFile(cfgFile, b, 0o600)
	startProcess(t, acmeAddr, &logs, filepath.Join(bindir, "pebble"), "-config", cfgFile, "-dnsserver", dnsAddr)

	minica := filepath.Join(modDir, "test/certs/pebble.minica.pem")
	d := start(t, "-addr", addr, "-acme-domain", domain, "-acme-email", "admin@example.org",
		"-acme-dir-url", "https://"+acmeAddr+"/dir", "-acme-ca-file", minica, "-data-dir", dir)
	if !strings.Contains(d.out.String(), "wss://") {
		t.Errorf("start output lacks a wss:// URL:\n%s", d.out.String())
	}

	// pebble's roots, to verify what signald serves.
	pool, _ := loadCAFile(minica)
	mgmt := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer mgmt.CloseIdleConnections()
	resp, err := mgmt.Get("https://" + mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root: %q", rootPEM)
	}

	// The first handshake waits for the order: account, tls-alpn-01, issuance.
	dialer := &tls.Dialer{Config: &tls.Config{ServerName: domain, RootCAs: roots}, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("TLS to signald: %v\nsignald:\n%s\npebble:\n%s", err, d.logs.String(), logs.String())
	}
	leaf := c.(*tls.Conn).ConnectionState().PeerCertificates[0]
	c.Close()
	if leaf.DNSNames[0] != domain || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
		t.Fatalf("served %v issued by %q", leaf.DNSNames, leaf.Issuer.CommonName)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme", domain)); err != nil {
		t.Errorf("certificate not cached in the data dir: %v", err)
	}

	// A browser-like client announces over wss:// with it.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: domain, RootCAs: roots}}}
	defer client.CloseIdleConnections()
	ws, _, err := websocket.Dial(ctx, "wss://"+addr, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	announceOK(t, ws)
	ws.Close(websocket.StatusNormalClosure, "")
}
