package stunturn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/transport/v5/reuseport"
	"github.com/pion/turn/v5"
)

var (
	errClosed      = errors.New("stunturn: server closed")
	errQuota       = errors.New("stunturn: allocation quota reached")
	errNoFamily    = errors.New("stunturn: no relay address for this address family")
	errNoRelayPort = errors.New("stunturn: no free relay port")
	errPeerDenied  = errors.New("stunturn: peer address refused")
)

// relayGen is the turn.RelayAddressGenerator of every listener. It opens
// relay sockets in the configured port range, wraps them with quota
// accounting, bandwidth limits, metrics and the credential's expiry, and
// registers them so that Close can wait for them.
type relayGen struct {
	s            *Server
	adv4, adv6   net.IP             // written into XOR-RELAYED-ADDRESS
	bind4, bind6 string             // host the relay sockets bind to
	turn         *guardedPacketConn // the UDP listener this generator serves, if it has fast paths
	poller       *relayPoller       // reads its relay sockets; nil: a goroutine per socket (pion's)
}

// forListener returns a copy of g for the allocations of the UDP listener c.
func (g *relayGen) forListener(c *guardedPacketConn) *relayGen {
	g2 := *g
	if c.udp != nil {
		g2.turn, g2.poller = c, c.poller
	}
	return &g2
}

var _ turn.RelayAddressGenerator = (*relayGen)(nil)

func (g *relayGen) Validate() error { return nil }

func (g *relayGen) family(network string) (adv net.IP, bind string, err error) {
	switch network {
	case "udp4", "tcp4":
		adv, bind = g.adv4, g.bind4
	case "udp6", "tcp6":
		adv, bind = g.adv6, g.bind6
	}
	if adv == nil {
		return nil, "", errNoFamily
	}
	return adv, bind, nil
}

// listenRange calls listen on random ports of the range until one binds.
func (g *relayGen) listenRange(requested int, listen func(port int) error) error {
	if requested != 0 {
		return listen(requested)
	}
	lo, hi := g.s.cfg.RelayPortMin, g.s.cfg.RelayPortMax
	for range 64 {
		if listen(lo+rand.IntN(hi-lo+1)) == nil {
			return nil
		}
	}
	return errNoRelayPort
}

// admitAllocation reserves quota for a new allocation of userID. The
// EVEN-PORT probe, which pion makes without a user and closes at once, is
// not counted.
func (g *relayGen) admitAllocation(userID string) (account, error) {
	if g.s.isClosed() {
		return account{}, errClosed
	}
	if userID == "" {
		return account{}, nil
	}
	acct := accountOf(userID)
	if q := g.s.quota.reserve(acct.quotaKey); q != "" {
		// QuotaHandler already refused what it could see with 486; this
		// is the race between two sockets, answered 508 by pion.
		g.s.m.quotaRejections.WithLabelValues(q).Inc()
		return account{}, errQuota
	}
	return acct, nil
}

func (g *relayGen) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	adv, bind, err := g.family(conf.Network)
	if err != nil {
		return nil, nil, err
	}
	acct, err := g.admitAllocation(conf.UserID)
	if err != nil {
		return nil, nil, err
	}
	var pc net.PacketConn
	var sock *relaySocket
	err = g.listenRange(conf.RequestedPort, func(port int) error {
		if g.poller != nil && conf.UserID != "" {
			s, err := g.poller.listenRelay(conf.Network, bind, port)
			if err == nil {
				sock, pc = s, s
			}
			return err
		}
		c, err := net.ListenPacket(conf.Network, net.JoinHostPort(bind, strconv.Itoa(port)))
		pc = c
		return err
	})
	if err != nil {
		if conf.UserID != "" {
			g.s.quota.release(acct.quotaKey)
		}
		return nil, nil, fmt.Errorf("allocate %s relay: %w", conf.Network, err)
	}
	if sock == nil {
		setBuffers(pc, relaySocketBuffer)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	relayed := &net.UDPAddr{IP: adv, Port: port}
	if conf.UserID == "" {
		return pc, relayed, nil
	}
	r := &relayPacketConn{PacketConn: pc, relayBase: relayBase{s: g.s, acct: acct}, sock: sock, turn: g.turn,
		in: byteBucket(g.s.cfg.BandwidthPerAllocation), out: byteBucket(g.s.cfg.BandwidthPerAllocation),
		key: relayed.String(), perms: make(map[netip.Addr]struct{})}
	if sock != nil {
		sock.owner = r
		if err := g.poller.add(sock); err != nil {
			sock.Close()
			g.s.quota.release(acct.quotaKey)
			return nil, nil, fmt.Errorf("allocate %s relay: %w", conf.Network, err)
		}
	} else {
		r.udp = pc.(*net.UDPConn)
	}
	g.s.indexRelay(r.key, r)
	r.start(r)
	return r, relayed, nil
}

func (g *relayGen) AllocateListener(conf turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	adv, bind, err := g.family(conf.Network)
	if err != nil {
		return nil, nil, err
	}
	acct, err := g.admitAllocation(conf.UserID)
	if err != nil {
		return nil, nil, err
	}
	// SO_REUSEPORT so that Connect can dial out from the same port.
	lc := net.ListenConfig{Control: reuseport.Control}
	var ln net.Listener
	err = g.listenRange(conf.RequestedPort, func(port int) error {
		l, err := lc.Listen(g.s.ctx, conf.Network, net.JoinHostPort(bind, strconv.Itoa(port)))
		ln = l
		return err
	})
	if err != nil {
		if conf.UserID != "" {
			g.s.quota.release(acct.quotaKey)
		}
		return nil, nil, fmt.Errorf("allocate %s relay: %w", conf.Network, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	r := &relayListener{Listener: ln, relayBase: relayBase{s: g.s, acct: acct}}
	r.start(r)
	return r, &net.TCPAddr{IP: adv, Port: port}, nil
}

// AllocateConn dials a peer for a TCP allocation (RFC 6062 Connect), from
// the allocation's relay port, with the 30 s timeout RFC 6062 asks for.
func (g *relayGen) AllocateConn(conf turn.AllocateConnConfig) (net.Conn, error) {
	if g.s.isClosed() {
		return nil, errClosed
	}
	remote, ok := conf.RemoteAddr.(*net.TCPAddr)
	if !ok {
		return nil, errBadPeer
	}
	if reason := g.s.filter.checkIP(remote.IP); reason != reasonNone {
		return nil, fmt.Errorf("%w: %s", errPeerDenied, reason)
	}
	_, bind, err := g.family(conf.Network)
	if err != nil {
		return nil, err
	}
	port := 0
	if la, ok := conf.LocalAddr.(*net.TCPAddr); ok {
		port = la.Port
	}
	local, err := net.ResolveTCPAddr(conf.Network, net.JoinHostPort(bind, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	d := net.Dialer{LocalAddr: local, Control: reuseport.Control, Timeout: 30 * time.Second}
	c, err := d.DialContext(g.s.ctx, conf.Network, remote.String())
	if err != nil {
		return nil, err
	}
	bw := g.s.cfg.BandwidthPerAllocation
	r := &relayConn{Conn: c, relayBase: relayBase{s: g.s}, in: byteBucket(bw), out: byteBucket(bw)}
	r.start(r)
	return r, nil
}

// relayBase is what every relay socket wrapper shares: registration with
// the server, the credential's expiry timer, and quota release on Close.
type relayBase struct {
	s      *Server
	acct   account
	once   sync.Once
	mu     sync.Mutex // guards expiry, which may fire before AfterFunc returns
	expiry *time.Timer
}

type closer interface{ Close() error }

func (b *relayBase) start(self closer) {
	b.s.trackRelay(self)
	if !b.acct.expiry.IsZero() {
		// The allocation ends when its credential does: closing the relay
		// socket makes pion delete the allocation.
		b.mu.Lock()
		b.expiry = time.AfterFunc(time.Until(b.acct.expiry), func() {
			b.s.log.Debug("credential expired, closing allocation", "user", b.acct.quotaKey)
			_ = self.Close()
		})
		b.mu.Unlock()
	}
}

func (b *relayBase) finish(self closer, inner func() error) error {
	err := errClosedTwice
	b.once.Do(func() {
		b.mu.Lock()
		if b.expiry != nil {
			b.expiry.Stop()
		}
		b.mu.Unlock()
		err = inner()
		if b.acct.quotaKey != "" {
			b.s.quota.release(b.acct.quotaKey)
		}
		b.s.untrackRelay(self)
	})
	if errors.Is(err, errClosedTwice) {
		return nil
	}
	return err
}

var errClosedTwice = errors.New("closed twice")

// relayPacketConn is a UDP relay socket. Over the bandwidth cap, datagrams
// are dropped in both directions: blocking would stall the listener's read
// goroutine, which serves every allocation on that socket.
//
// Its socket is read by the client's listener's relayPoller (Linux), or
// else in ReadFrom by pion's goroutine for the allocation (on other
// systems, and for the clients of TCP and TLS listeners). Either way
// ChannelData for a UDP client is relayed here (channel.go), and pion gets
// only what needs a Data indication.
type relayPacketConn struct {
	net.PacketConn
	relayBase
	udp     *net.UDPConn       // the socket, read in ReadFrom; or
	sock    *relaySocket       // the socket, read by a relayPoller
	turn    *guardedPacketConn // the listener of the allocation's client; nil: not UDP
	in, out *bucket            // peer→client, client→peer
	key     string             // relayed address, as pion reports it in events
	buf     []byte             // readOne's: room for a ChannelData header, the datagram, padding

	// The allocation's permissions and channels, mirrored from pion's
	// events, so that datagrams from peers without a permission are dropped
	// before they are counted or spend the bandwidth budget (pion would
	// drop them a moment later), and ChannelData needs no trip through pion.
	mu     sync.RWMutex
	perms  map[netip.Addr]struct{}
	chans  channels
	client netip.AddrPort // the UDP client, once pion reported the allocation
	closed bool
}

func (r *relayPacketConn) setPermission(ip net.IP, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		r.perms[ipKey(ip)] = struct{}{}
	} else {
		delete(r.perms, ipKey(ip))
	}
}

func (r *relayPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if r.sock != nil {
		return r.sock.ReadFrom(p) // the poller reads the socket
	}
	for {
		n, from, toPion, err := r.readOne(p)
		if err != nil {
			return 0, nil, err
		}
		if toPion {
			return n, net.UDPAddrFromAddrPort(from), nil
		}
	}
}

// readOne reads a datagram of at most len(p) bytes, as pion's own read
// would, and passes it to fromPeer; what is for pion it copies to p.
func (r *relayPacketConn) readOne(p []byte) (n int, from netip.AddrPort, toPion bool, err error) {
	// Room for a ChannelData header in front and padding behind.
	if len(r.buf) < 4+len(p)+3 {
		r.buf = make([]byte, 4+len(p)+3)
	}
	n, from, err = r.udp.ReadFromUDPAddrPort(r.buf[4 : 4+len(p)])
	if err != nil {
		return 0, from, false, err
	}
	switch v, channel, client := r.fromPeer(n, from); v {
	case peerToClient:
		_, _ = r.turn.udp.WriteToUDPAddrPort(channelDataFrame(r.buf, channel, n), client)
	case peerToPion:
		return copy(p, r.buf[4:4+n]), from, true, nil
	}
	return 0, from, false, nil
}

// What to do with a datagram from a peer.
type peerVerdict int

const (
	peerDrop     peerVerdict = iota // no permission, or over the bandwidth cap
	peerToClient                    // relay it to the client as ChannelData
	peerToPion                      // let pion send a Data indication
)

// fromPeer decides what happens to a datagram of n bytes from the peer at
// from, and counts it.
func (r *relayPacketConn) fromPeer(n int, from netip.AddrPort) (v peerVerdict, channel uint16, client netip.AddrPort) {
	ok, channel, client := r.route(peerKey(from))
	if !ok {
		return peerDrop, 0, client
	}
	if !r.in.allow(float64(n)) || !r.s.totalIn.allow(float64(n)) {
		r.s.m.dropBandwidth.Inc()
		return peerDrop, 0, client
	}
	r.s.m.bytesToClient.Add(float64(n))
	r.s.m.packetsToClient.Inc()
	if channel != 0 {
		return peerToClient, channel, client
	}
	return peerToPion, 0, client
}

func (r *relayPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ap, ok := udpAddrPort(addr)
	if !ok {
		return 0, errBadPeer
	}
	return r.writeToPeer(p, ap)
}

// writeToPeer sends p to peer, within the bandwidth caps.
func (r *relayPacketConn) writeToPeer(p []byte, peer netip.AddrPort) (int, error) {
	n := float64(len(p))
	if !r.out.allow(n) || !r.s.totalOut.allow(n) {
		r.s.m.dropBandwidth.Inc()
		return len(p), nil // dropped like any datagram
	}
	r.s.m.bytesToPeer.Add(n)
	r.s.m.packetsToPeer.Inc()
	if r.sock != nil {
		return r.sock.writeTo(p, peer)
	}
	return r.udp.WriteToUDPAddrPort(p, peer)
}

func (r *relayPacketConn) Close() error {
	return r.finish(r, func() error {
		r.mu.Lock()
		r.closed = true
		client := r.client
		r.mu.Unlock()
		if r.turn != nil && client.IsValid() {
			r.turn.removeAlloc(client, r)
		}
		r.s.unindexRelay(r.key, r)
		return r.PacketConn.Close()
	})
}

// relayListener is a TCP allocation's relay port (RFC 6062); connections
// from peers are bandwidth-limited like dialed ones.
type relayListener struct {
	net.Listener
	relayBase
}

func (l *relayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	bw := l.s.cfg.BandwidthPerAllocation
	r := &relayConn{Conn: c, relayBase: relayBase{s: l.s}, in: byteBucket(bw), out: byteBucket(bw)}
	r.start(r)
	return r, nil
}

func (l *relayListener) Close() error { return l.finish(l, l.Listener.Close) }

// relayConn is a TCP connection to a peer. Over the cap it waits: TCP has
// flow control, so slowing down is right and loses nothing.
type relayConn struct {
	net.Conn
	relayBase
	in, out *bucket
	closed  chan struct{}
	mkOnce  sync.Once
}

func (r *relayConn) done() chan struct{} {
	r.mkOnce.Do(func() { r.closed = make(chan struct{}) })
	return r.closed
}

func (r *relayConn) wait(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-r.done():
		return net.ErrClosed
	}
}

func (r *relayConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if n > 0 {
		r.s.m.bytesToClient.Add(float64(n))
		r.s.m.packetsToClient.Inc()
		d := max(r.in.take(float64(n)), r.s.totalIn.take(float64(n)))
		if werr := r.wait(d); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

func (r *relayConn) Write(p []byte) (int, error) {
	d := max(r.out.take(float64(len(p))), r.s.totalOut.take(float64(len(p))))
	if err := r.wait(d); err != nil {
		return 0, err
	}
	n, err := r.Conn.Write(p)
	r.s.m.bytesToPeer.Add(float64(n))
	r.s.m.packetsToPeer.Inc()
	return n, err
}

func (r *relayConn) Close() error {
	return r.finish(r, func() error {
		close(r.done())
		return r.Conn.Close()
	})
}

// detectRelayAddrs picks the addresses to advertise when Config leaves them
// unset: the source address of the default route of each family, found by
// connecting (not sending on) a UDP socket; loopback when every listener is
// on loopback, as in tests.
func detectRelayAddrs(ctx context.Context, listenHosts []net.IP, v4, v6 net.IP) (net.IP, net.IP) {
	allLoopback := len(listenHosts) > 0
	for _, h := range listenHosts {
		if h == nil || !h.IsLoopback() {
			allLoopback = false
		}
	}
	if allLoopback {
		if v4 == nil {
			v4 = net.IPv4(127, 0, 0, 1).To4()
		}
		if v6 == nil {
			v6 = net.IPv6loopback
		}
		return v4, v6
	}
	route := func(network, probe string) net.IP {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, probe)
		if err != nil {
			return nil
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).IP
	}
	if v4 == nil {
		v4 = route("udp4", "192.0.2.1:3478").To4() // TEST-NET-1: any routable destination will do
	}
	if v6 == nil {
		if ip := route("udp6", "[2001:db8::1]:3478"); ip != nil && ip.To4() == nil && !ip.IsLinkLocalUnicast() {
			v6 = ip
		}
	}
	return v4, v6
}

// bindHost is where relay sockets for the advertised address adv listen: on
// adv itself if it belongs to this machine, else (behind NAT) on every
// address of the family.
func bindHost(adv net.IP, wildcard string) string {
	if adv == nil {
		return wildcard
	}
	for _, a := range localAddrs() {
		if a.AsSlice() != nil && net.IP(a.AsSlice()).Equal(adv) {
			return adv.String()
		}
	}
	return wildcard
}
