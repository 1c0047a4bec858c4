//go:build !linux

package stunturn

import (
	"errors"
	"net"
	"net/netip"
)

// relayPoller is Linux only (epoll, recvmmsg): elsewhere pion reads each
// relay socket in a goroutine of its own.
type relayPoller struct{}

func newRelayPoller(*net.UDPConn) (*relayPoller, error) { return nil, nil }

func (p *relayPoller) close() {}

func (p *relayPoller) listenRelay(string, string, int) (*relaySocket, error) {
	return nil, errors.ErrUnsupported
}

func (p *relayPoller) add(*relaySocket) error { return errors.ErrUnsupported }

// relaySocket is never made outside Linux.
type relaySocket struct {
	net.PacketConn
	owner *relayPacketConn
}

func (s *relaySocket) writeTo([]byte, netip.AddrPort) (int, error) { return 0, errors.ErrUnsupported }
