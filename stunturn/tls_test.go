package stunturn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestRelayTLS allocates and relays over a TURN-over-TLS listener.
func TestRelayTLS(t *testing.T) {
	cert := selfSigned(t)
	s := newTestServer(t, Config{
		TLSConfig:             &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ListenTLS:             []string{"127.0.0.1:0"},
		AllowLoopbackForTests: true,
	})
	if len(s.Addrs().TLS) != 1 {
		t.Fatalf("Addrs().TLS = %v", s.Addrs().TLS)
	}
	conn, err := tls.Dial("tcp", s.Addrs().TLS[0].String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // self-signed test cert
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	user, pass := restCreds("tls")
	c := &turnClient{t: t, conn: conn, stream: true, user: user, pass: pass}
	c.mustAllocate(protoUDP, famV4)
	peer := udpEcho(t, "udp4", "127.0.0.1:0")
	if code := c.channelBind(0x4000, peer); code != 0 {
		t.Fatalf("ChannelBind = %d", code)
	}
	msg := []byte("over tls")
	c.sendChannel(0x4000, msg)
	got, err := c.readChannel(2 * time.Second)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo over TLS = %q, %v", got, err)
	}
	if code := c.createPermission(netipAddrPort("10.0.0.1:80")); code != 403 {
		t.Errorf("CreatePermission(10.0.0.1) over TLS = %d, want 403", code)
	}
}
