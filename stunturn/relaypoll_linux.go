package stunturn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// relayPoller reads the relay sockets of the UDP allocations of one
// listener in one goroutine, as coturn's relay threads do. The sockets are
// in an epoll set of the poller's own, outside Go's netpoller; the
// goroutine waits in Go's netpoller for that set to become readable, then
// drains every ready socket with recvmmsg and sends the ChannelData for the
// clients with one sendmmsg on the listener. Under load one wake-up serves
// many datagrams of many allocations, where a goroutine per socket (pion's
// way) pays a wake-up, a netpoll round, a scheduler pass and a sendto per
// datagram.
//
// pion keeps its goroutine per allocation; it waits in ReadFrom for the
// datagrams that need a Data indication, which the poller hands over.
type relayPoller struct {
	ep   *os.File // the epoll set, in Go's netpoller
	rc   syscall.RawConn
	epfd int

	mu    sync.Mutex
	socks map[int32]*relaySocket // by fd

	// Used by the poller goroutine only.
	events  []unix.EpollEvent
	ready   []*relaySocket
	in      datagramBatch
	zones   zoneCache
	scopes  scopeCache
	out     *batchSender // ChannelData to clients, on the listener
	family  int          // of the listener
	serveFn func(fd uintptr) bool

	done chan struct{}
}

// relayMTU is the largest datagram a relay passes on whole: pion reads relay
// sockets with a buffer of this size (allocation.rtpMTU) and so truncates
// larger ones to it; the poller does the same.
const relayMTU = 1600

// Room around a datagram in the poller's buffers: a ChannelData header in
// front, its padding behind.
const (
	relayHeadroom = 4
	relayBufSize  = relayHeadroom + relayMTU + 4
)

// drainBatches bounds the recvmmsg calls for one socket per round, so that a
// flooded allocation cannot starve the others; epoll reports it again.
const drainBatches = 4

// newRelayPoller starts a poller for the relay sockets of the clients of
// the UDP listener lis.
func newRelayPoller(lis *net.UDPConn) (*relayPoller, error) {
	lrc, err := lis.SyscallConn()
	if err != nil {
		return nil, err
	}
	family, err := socketFamily(lrc)
	if err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(epfd), "relay-epoll") // non-blocking: goes into Go's netpoller
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, err
	}
	p := &relayPoller{
		ep: ep, rc: rc, epfd: epfd,
		socks:  make(map[int32]*relaySocket),
		events: make([]unix.EpollEvent, 64),
		in:     newRelayBatch(batchSize),
		out:    newBatchSender(lrc, relayBufSize),
		family: family,
		done:   make(chan struct{}),
	}
	p.serveFn = p.serve // a method value made once: no allocation per round
	go p.run()
	return p, nil
}

// newRelayBatch is a datagramBatch whose datagrams land relayHeadroom bytes
// into their buffers.
func newRelayBatch(n int) datagramBatch {
	b := newDatagramBatch(n, relayBufSize)
	for i := range n {
		b.iovs[i].Base = &b.bufs[i][relayHeadroom]
		b.iovs[i].SetLen(relayMTU)
	}
	return b
}

// close stops the poller and waits for its goroutine. Sockets still open
// stay usable for writing but are no longer read.
func (p *relayPoller) close() {
	p.ep.Close()
	<-p.done
}

func (p *relayPoller) run() {
	defer close(p.done)
	for p.rc.Read(p.serveFn) == nil {
	}
}

// serve serves the ready sockets, round after round, and reports false
// (wait in the netpoller) when a round found the set drained. It runs
// inside RawConn.Read, after the netpoller's readiness was reset, so
// whatever arrives after the round's epoll_wait wakes the goroutine again:
// there is no need for another, empty, epoll_wait before sleeping.
func (p *relayPoller) serve(uintptr) bool {
	for {
		n := epollWait(p.epfd, p.events)
		if n == 0 {
			return false
		}
		p.mu.Lock()
		for _, ev := range p.events[:n] {
			if s := p.socks[ev.Fd]; s != nil {
				p.ready = append(p.ready, s)
			}
		}
		p.mu.Unlock()
		more := n == len(p.events)
		for i, s := range p.ready {
			if p.drain(s) {
				more = true
			}
			p.ready[i] = nil
		}
		p.ready = p.ready[:0]
		p.out.flush()
		if !more {
			return false
		}
	}
}

// drain reads what s has, at most drainBatches batches, and passes each
// datagram to its allocation. It reports whether s may have more.
func (p *relayPoller) drain(s *relaySocket) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	for range drainBatches {
		n, errno := recvmmsg(s.fd, &p.in)
		if errno != 0 {
			// EAGAIN: drained. Anything else would have ended the
			// allocation in pion's loop; the next read will tell.
			return false
		}
		for i := range n {
			from := p.zones.addrPort(&p.in.names[i])
			buf, size := p.in.bufs[i], int(p.in.hdrs[i].Len)
			switch v, channel, client := s.owner.fromPeer(size, from); v {
			case peerToClient:
				p.queueFrame(buf, channel, size, client)
			case peerToPion:
				s.queueForPion(buf[relayHeadroom:relayHeadroom+size], from)
			}
		}
		if n < len(p.in.hdrs) {
			return false
		}
	}
	return true
}

// queueFrame queues the datagram of size bytes in buf, behind
// relayHeadroom, for client as ChannelData on channel.
func (p *relayPoller) queueFrame(buf []byte, channel uint16, size int, client netip.AddrPort) {
	slot, name := p.out.slot()
	namelen := putSockaddr(name, p.family, client, p.scopes.index(client.Addr().Zone()))
	if namelen == 0 {
		return // cannot happen: the client came in on this listener
	}
	frame := channelDataFrame(buf, channel, size)
	p.out.commit(copy(slot, frame), namelen)
}

func (p *relayPoller) add(s *relaySocket) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.fd)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	p.socks[int32(s.fd)] = s
	return nil
}

func (p *relayPoller) remove(s *relaySocket) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.socks[int32(s.fd)] == s {
		delete(p.socks, int32(s.fd))
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	}
}

// relaySocket is a UDP relay socket the poller reads. It is a
// net.PacketConn for pion: ReadFrom returns the datagrams the poller hands
// over (those that need a Data indication).
type relaySocket struct {
	fd     int
	family int // unix.AF_INET or AF_INET6
	local  *net.UDPAddr
	p      *relayPoller
	owner  *relayPacketConn

	mu     sync.RWMutex // read-held across every use of fd, so that Close cannot close it under one
	closed bool

	toPion chan datagram
	done   chan struct{}
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

var _ net.PacketConn = (*relaySocket)(nil)

// listenRelay opens a relay socket bound to host:port ("0.0.0.0", "::" or
// an address of the machine) for the poller; add it once its owner is set.
func (p *relayPoller) listenRelay(network, host string, port int) (*relaySocket, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w", network, host, err)
	}
	var family int
	var sa unix.Sockaddr
	switch {
	case network == "udp6":
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	case ip.Unmap().Is4():
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: ip.Unmap().As4()}
	default:
		return nil, fmt.Errorf("listen %s %s: not an IPv4 address", network, host)
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	fail := func(op string, err error) (*relaySocket, error) {
		unix.Close(fd)
		return nil, &net.OpError{Op: "listen", Net: network,
			Addr: &net.UDPAddr{IP: ip.AsSlice(), Port: port}, Err: os.NewSyscallError(op, err)}
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, relaySocketBuffer)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, relaySocketBuffer)
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	name, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	local := &net.UDPAddr{}
	switch a := name.(type) {
	case *unix.SockaddrInet4:
		local.IP, local.Port = net.IP(a.Addr[:]), a.Port
	case *unix.SockaddrInet6:
		local.IP, local.Port = net.IP(a.Addr[:]), a.Port
	}
	return &relaySocket{fd: fd, family: family, local: local, p: p,
		toPion: make(chan datagram, 32), done: make(chan struct{})}, nil
}

// queueForPion hands pion a copy of b, or drops it when pion is that far
// behind.
func (s *relaySocket) queueForPion(b []byte, from netip.AddrPort) {
	select {
	case s.toPion <- datagram{append([]byte(nil), b...), from}:
	default:
	}
}

func (s *relaySocket) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-s.toPion:
		return copy(p, d.b), net.UDPAddrFromAddrPort(d.from), nil
	case <-s.done:
		return 0, nil, net.ErrClosed
	}
}

func (s *relaySocket) WriteTo(p []byte, addr net.Addr) (int, error) {
	ap, ok := udpAddrPort(addr)
	if !ok {
		return 0, errBadPeer
	}
	return s.writeTo(p, ap)
}

// writeTo sends p to the peer to. A full socket buffer drops the datagram,
// as a full queue anywhere on the path would.
func (s *relaySocket) writeTo(p []byte, to netip.AddrPort) (int, error) {
	var sa unix.RawSockaddrInet6
	salen := putSockaddr(&sa, s.family, to, 0) // peers are never link-local
	if salen == 0 {
		return 0, &net.AddrError{Err: "non-IPv4 address", Addr: to.Addr().String()}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	switch errno := sendto(s.fd, p, &sa, salen); errno {
	case 0, unix.EAGAIN:
		return len(p), nil
	default:
		return 0, &net.OpError{Op: "write", Net: "udp", Source: s.local, Addr: net.UDPAddrFromAddrPort(to),
			Err: os.NewSyscallError("sendto", errno)}
	}
}

// Close removes s from the poller and closes it; pion's ReadFrom returns
// net.ErrClosed.
func (s *relaySocket) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.p.remove(s)
	err := unix.Close(s.fd)
	s.mu.Unlock()
	close(s.done)
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

func (s *relaySocket) LocalAddr() net.Addr { return s.local }

var errNoDeadlines = errors.New("stunturn: relay sockets have no deadlines")

func (s *relaySocket) SetDeadline(time.Time) error      { return errNoDeadlines }
func (s *relaySocket) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (s *relaySocket) SetWriteDeadline(time.Time) error { return errNoDeadlines }
