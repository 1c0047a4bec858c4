//go:build !linux

package stunturn

import (
	"net"
	"net/netip"
)

// listenerIO reads a UDP listening socket one datagram at a time where
// recvmmsg and sendmmsg are not available. See listenio_linux.go.
type listenerIO struct {
	c      *net.UDPConn
	buf    []byte
	from   netip.AddrPort
	handle func(b []byte, from netip.AddrPort) bool
	out    [bindingResponseMax]byte
}

func newListenerIO(c *net.UDPConn, size int, handle func(b []byte, from netip.AddrPort) bool) *listenerIO {
	return &listenerIO{c: c, buf: make([]byte, size), handle: handle}
}

func (l *listenerIO) next() ([]byte, netip.AddrPort, error) {
	for {
		n, from, err := l.c.ReadFromUDPAddrPort(l.buf)
		if err != nil {
			return nil, from, err
		}
		l.from = from
		if !l.handle(l.buf[:n], from) {
			return l.buf[:n], from, nil
		}
	}
}

func (l *listenerIO) replyBuffer() []byte { return l.out[:0] }

func (l *listenerIO) reply(b []byte) { _, _ = l.c.WriteToUDPAddrPort(b, l.from) }
