package stunturn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/transport/v5/reuseport"
)

// listenUDP opens n sockets on addr sharing one port with SO_REUSEPORT; the
// kernel spreads clients over them by address hash, so each client stays on
// one socket (and one pion allocation manager).
func listenUDP(ctx context.Context, addr string, n int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: reuseport.Control}
	first, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen udp %s: %w", addr, err)
	}
	setBuffers(first, listenSocketBuffer)
	conns := []net.PacketConn{first}
	host, _, _ := net.SplitHostPort(addr)
	port := first.LocalAddr().(*net.UDPAddr).Port
	for len(conns) < n {
		c, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("listen udp %s (socket %d): %w", addr, len(conns)+1, err)
		}
		setBuffers(c, listenSocketBuffer)
		conns = append(conns, c)
	}
	return conns, nil
}

// Socket buffer sizes. The kernel default (rmem_default, often 208 KiB) is
// a fraction of a second at a few thousand datagrams per second, so a
// server that stalls briefly (GC, a busy Raspberry Pi) drops datagrams
// (RcvbufErrors, coturn#616). The kernel caps these at net.core.rmem_max
// and wmem_max; raise those for the full size.
const (
	listenSocketBuffer = 4 << 20
	relaySocketBuffer  = 1 << 20
)

func setBuffers(c net.PacketConn, size int) {
	if u, ok := c.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(size)
		_ = u.SetWriteBuffer(size)
	}
}

// guardedPacketConn is a UDP listening socket as pion sees it: the guard
// looks at each datagram before pion's read loop gets it. Two kinds of
// datagram never reach pion: Binding requests, answered here (binding.go),
// and ChannelData on a channel of one of this socket's allocations, relayed
// here (channel.go). Both paths allocate nothing.
//
// ReadFrom is called only by pion's read loop for this socket, one
// goroutine; WriteTo by any.
type guardedPacketConn struct {
	net.PacketConn
	s   *Server
	udp *net.UDPConn // the same socket; nil: no fast paths (not a UDPConn)
	io  *listenerIO  // ReadFrom's, made at its first call
	mtu int          // the size of pion's read buffer

	fastFn func(b []byte, from netip.AddrPort) bool // c.fast, made once

	// poller reads the relay sockets of this socket's UDP allocations; nil
	// where there is none (not Linux), and pion reads each in a goroutine.
	poller *relayPoller

	mu     sync.RWMutex
	allocs map[netip.AddrPort]*relayPacketConn // UDP allocations of this socket's clients, by client
}

func newGuardedPacketConn(pc net.PacketConn, s *Server) *guardedPacketConn {
	c := &guardedPacketConn{PacketConn: pc, s: s, allocs: make(map[netip.AddrPort]*relayPacketConn)}
	c.udp, _ = pc.(*net.UDPConn)
	c.fastFn = c.fast
	return c
}

func (c *guardedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.io == nil && c.udp != nil {
		c.mtu = len(p)
		c.io = newListenerIO(c.udp, len(p), c.fastFn)
	}
	if c.io == nil {
		return c.readSlow(p)
	}
	for {
		b, from, err := c.io.next()
		if err != nil {
			return 0, nil, err
		}
		addr := net.UDPAddrFromAddrPort(from)
		if c.s.admit(b, addr, c.PacketConn.LocalAddr(), c) {
			return copy(p, b), addr, nil
		}
	}
}

// fast deals with the datagrams of the fast paths and reports whether b was
// one: ChannelData on a channel of one of this socket's allocations, and
// Binding requests.
func (c *guardedPacketConn) fast(b []byte, from netip.AddrPort) bool {
	if len(b) >= c.mtu {
		return false // may have been truncated: pion drops it
	}
	if isChannelData(b) {
		return c.relayChannelData(b, from)
	}
	if tid, ok := parseBindingRequest(b); ok {
		c.answerBinding(tid, from)
		return true
	}
	return false
}

func (c *guardedPacketConn) readSlow(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.s.admit(p[:n], addr, c.PacketConn.LocalAddr(), c) {
			return n, addr, nil
		}
	}
}

// answerBinding queues the Binding success response, if the source is
// within UnauthRatePerIP (the guard charges the slow path's Bindings the
// same way).
func (c *guardedPacketConn) answerBinding(tid [12]byte, to netip.AddrPort) {
	if !c.s.unauth.allowAddr(to.Addr()) {
		c.s.m.dropUnauth.Inc()
		return
	}
	c.io.reply(appendBindingSuccess(c.io.replyBuffer(), tid, to))
}

func (c *guardedPacketConn) reply(b []byte, to net.Addr) {
	_, _ = c.PacketConn.WriteTo(b, to)
}

// controlIdle closes a TCP/TLS control connection that has sent nothing
// for longer than any allocation lifetime pion grants (under 1 h), so a
// silent connection cannot hold a goroutine forever.
const controlIdle = time.Hour + time.Minute

// guardedListener is a TCP or TLS listening socket as pion sees it. It
// rate-limits new connections per source IP, tracks them so that Close can
// close them (pion does not), and hands pion framedConns.
type guardedListener struct {
	net.Listener
	s   *Server
	tls *tls.Config
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.s.chargeUnauth(c.RemoteAddr()) {
			c.Close()
			continue
		}
		if !l.s.trackConn(c) {
			c.Close()
			return nil, net.ErrClosed
		}
		fc := &framedConn{Conn: c, raw: c, s: l.s, idle: controlIdle}
		if l.tls != nil {
			fc.tls = tls.Server(c, l.tls)
			fc.Conn = fc.tls
		}
		return fc, nil
	}
}
