package stunturn

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSecret = []byte("0123456789abcdef0123456789abcdef")

type testServer struct {
	*Server
	reg *prometheus.Registry
}

// newTestServer starts a Server on 127.0.0.1 with free ports. Zero fields
// of cfg get test values (listeners, secret, logger, registry).
func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.ListenUDP == nil {
		cfg.ListenUDP = []string{"127.0.0.1:0"}
	}
	if cfg.ListenTCP == nil {
		cfg.ListenTCP = []string{"127.0.0.1:0"}
	}
	if cfg.Secrets == nil {
		cfg.Secrets = [][]byte{testSecret}
	}
	if cfg.SocketsPerPort == 0 {
		cfg.SocketsPerPort = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	reg := prometheus.NewRegistry()
	if cfg.Registerer == nil {
		cfg.Registerer = reg
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testServer{s, reg}
}

func (s *testServer) udp() net.Addr { return s.Addrs().UDP[0] }
func (s *testServer) tcp() net.Addr { return s.Addrs().TCP[0] }

func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// restCreds returns valid REST credentials for user.
func restCreds(user string) (string, string) {
	return NewCredentials(testSecret, user, time.Hour, time.Now())
}

// udpEcho runs a UDP echo server on addr ("127.0.0.1:0" or "[::1]:0") until
// the test ends.
func udpEcho(t *testing.T, network, addr string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return serveUDPEcho(t, pc)
}

func serveUDPEcho(t *testing.T, pc net.PacketConn) netip.AddrPort {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// tcpEcho runs a TCP echo server until the test ends.
func tcpEcho(t *testing.T, network, addr string) netip.AddrPort {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().(*net.TCPAddr).AddrPort()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// echoThrough sends ten messages on channel ch and checks each comes back.
func echoThrough(t *testing.T, c *turnClient, ch uint16) {
	t.Helper()
	for i := range 10 {
		msg := bytes.Repeat([]byte{byte(i)}, 200)
		c.sendChannel(ch, msg)
		got, err := c.readChannel(2 * time.Second)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo %d through relay: %v", i, err)
		}
	}
}
