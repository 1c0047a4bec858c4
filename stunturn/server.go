package stunturn

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/turn/v5"
)

// Server is a STUN/TURN server. It owns its sockets from NewServer until
// Close. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	filter *peerFilter
	auth   *authenticator // nil: STUN only
	quota  *quotas
	allocs allocTable
	unauth *sourceLimiter

	totalIn, totalOut *bucket // BandwidthTotal, peer→client and client→peer

	turn    *turn.Server
	pollers []*relayPoller
	addrs   ListenAddrs
	ctx     context.Context // cancelled by Close; bounds dials and TLS handshakes
	cancel  context.CancelFunc

	warnDenied everyMinute

	mu        sync.Mutex
	closed    bool
	stash     map[string][]byte           // see verify
	conns     map[net.Conn]struct{}       // client TCP/TLS connections
	relays    map[closer]struct{}         // open relay sockets and connections
	udpRelays map[string]*relayPacketConn // by relayed address, for permission events
	idle      chan struct{}               // closed when conns and relays are empty after Close

	closeOnce sync.Once
	closeErr  error
}

// ListenAddrs are the addresses a Server listens on, with the ports it
// actually bound (a Config port of 0 picks a free one).
type ListenAddrs struct {
	UDP, TCP, TLS []net.Addr
}

// NewServer opens the listeners of cfg and starts serving. Close it to stop.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "turn"),
		m:         m,
		quota:     newQuotas(cfg.UserQuota, cfg.TotalQuota),
		unauth:    newSourceLimiter(cfg.UnauthRatePerIP),
		totalIn:   byteBucket(cfg.BandwidthTotal),
		totalOut:  byteBucket(cfg.BandwidthTotal),
		ctx:       ctx,
		cancel:    cancel,
		stash:     make(map[string][]byte),
		conns:     make(map[net.Conn]struct{}),
		relays:    make(map[closer]struct{}),
		udpRelays: make(map[string]*relayPacketConn),
	}
	if len(cfg.Secrets) > 0 || len(cfg.StaticUsers) > 0 {
		s.auth = &authenticator{realm: cfg.Realm, secrets: cfg.Secrets, static: cfg.StaticUsers}
	}
	if err := s.start(); err != nil {
		cancel()
		m.unregister(cfg.Registerer)
		return nil, err
	}
	return s, nil
}

func (s *Server) start() (err error) {
	cfg := s.cfg
	var pcs []net.PacketConn
	var lns []net.Listener
	defer func() {
		if err != nil {
			for _, c := range pcs {
				c.Close()
			}
			for _, l := range lns {
				l.Close()
			}
		}
	}()

	var hosts []net.IP
	for _, a := range cfg.ListenUDP {
		conns, err := listenUDP(s.ctx, a, cfg.SocketsPerPort)
		if err != nil {
			return err
		}
		pcs = append(pcs, conns...)
		s.addrs.UDP = append(s.addrs.UDP, conns[0].LocalAddr())
		hosts = append(hosts, conns[0].LocalAddr().(*net.UDPAddr).IP)
	}
	listenTCP := func(addrs []string, into *[]net.Addr) error {
		for _, a := range addrs {
			var lc net.ListenConfig
			l, err := lc.Listen(s.ctx, "tcp", a)
			if err != nil {
				return fmt.Errorf("listen tcp %s: %w", a, err)
			}
			lns = append(lns, l)
			*into = append(*into, l.Addr())
			hosts = append(hosts, l.Addr().(*net.TCPAddr).IP)
		}
		return nil
	}
	if err := listenTCP(cfg.ListenTCP, &s.addrs.TCP); err != nil {
		return err
	}
	nTCP := len(lns)
	if err := listenTCP(cfg.ListenTLS, &s.addrs.TLS); err != nil {
		return err
	}

	for i, h := range hosts {
		if h.IsUnspecified() {
			hosts[i] = nil
		}
	}
	adv4, adv6 := detectRelayAddrs(s.ctx, hosts, cfg.RelayAddress, cfg.RelayAddressV6)
	if adv4 == nil {
		s.log.Warn("no IPv4 relay address: set RelayAddress; IPv4 allocations will fail")
	}
	gen := &relayGen{s: s, adv4: adv4, adv6: adv6, bind4: bindHost(adv4, "0.0.0.0"), bind6: bindHost(adv6, "::")}

	var self []netip.Addr
	for _, ip := range []net.IP{adv4, adv6} {
		if a, ok := netip.AddrFromSlice(ip); ok {
			self = append(self, a)
		}
	}
	self = append(self, localAddrs()...)
	s.filter = newPeerFilter(cfg.AllowPeers, self, cfg.AllowLoopbackForTests)

	sc := turn.ServerConfig{
		Realm:              cfg.Realm,
		LoggerFactory:      pionLogs{s.log},
		QuotaHandler:       s.quotaHandler,
		EventHandler:       s.eventHandler(),
		AllocationLifetime: cfg.AllocationLifetime,
	}
	if s.auth != nil {
		sc.AuthHandler = s.authHandler
	}
	defer func() {
		if err != nil {
			s.closePollers()
		}
	}()
	for _, pc := range pcs {
		gpc := newGuardedPacketConn(pc, s)
		if gpc.udp != nil {
			if gpc.poller, err = newRelayPoller(gpc.udp); err != nil {
				return fmt.Errorf("relay poller: %w", err)
			}
			if gpc.poller != nil {
				s.pollers = append(s.pollers, gpc.poller)
			}
		}
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn:            gpc,
			RelayAddressGenerator: gen.forListener(gpc),
			PermissionHandler:     s.permissionHandler,
		})
	}
	for i, l := range lns {
		gl := &guardedListener{Listener: l, s: s}
		if i >= nTCP {
			gl.tls = cfg.TLSConfig
		}
		sc.ListenerConfigs = append(sc.ListenerConfigs, turn.ListenerConfig{
			Listener:              gl,
			RelayAddressGenerator: gen,
			PermissionHandler:     s.permissionHandler,
		})
	}
	ts, err := turn.NewServer(sc)
	if err != nil {
		return fmt.Errorf("start turn server: %w", err)
	}
	s.turn = ts
	s.log.Info("listening", "udp", s.addrs.UDP, "tcp", s.addrs.TCP, "tls", s.addrs.TLS,
		"sockets_per_port", cfg.SocketsPerPort, "relay_v4", adv4, "relay_v6", adv6,
		"relay_ports", fmt.Sprintf("%d-%d", cfg.RelayPortMin, cfg.RelayPortMax),
		"auth", s.auth != nil)
	return nil
}

// Addrs returns the addresses the server listens on.
func (s *Server) Addrs() ListenAddrs { return s.addrs }

// AllocationCount returns the number of open allocations.
func (s *Server) AllocationCount() int { return s.turn.AllocationCount() }

// Close stops the listeners, closes every client connection and allocation
// (relay sockets included) and returns when they are gone, or after 5 s.
// It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.idle = make(chan struct{})
		conns := make([]net.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()

		s.cancel()
		s.closeErr = s.turn.Close() // listeners; pion then closes its allocations
		for _, c := range conns {
			c.Close()
		}
		s.checkIdle()
		deadline := time.NewTimer(5 * time.Second)
		defer deadline.Stop()
		select {
		case <-s.idle:
		case <-deadline.C:
			s.forceCloseRelays()
		}
		// pion deletes an allocation in the goroutine that reads its relay
		// socket, just after that socket is closed: wait for that too.
		for end := time.Now().Add(time.Second); s.turn.AllocationCount() > 0; time.Sleep(2 * time.Millisecond) {
			if time.Now().After(end) {
				s.log.Warn("close: pion still lists allocations", "n", s.turn.AllocationCount())
				break
			}
		}
		s.closePollers()
		s.m.unregister(s.cfg.Registerer)
		s.log.Info("closed")
	})
	return s.closeErr
}

func (s *Server) closePollers() {
	for _, p := range s.pollers {
		p.close()
	}
	s.pollers = nil
}

func (s *Server) forceCloseRelays() {
	s.mu.Lock()
	left := make([]closer, 0, len(s.relays))
	for r := range s.relays {
		left = append(left, r)
	}
	s.mu.Unlock()
	s.log.Warn("close: relays still open after 5s, closing them", "n", len(left))
	for _, r := range left {
		r.Close()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) trackConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrackConn(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.checkIdle()
}

func (s *Server) trackRelay(r closer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relays[r] = struct{}{}
}

func (s *Server) untrackRelay(r closer) {
	s.mu.Lock()
	delete(s.relays, r)
	s.mu.Unlock()
	s.checkIdle()
}

func (s *Server) indexRelay(key string, r *relayPacketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.udpRelays[key] = r
}

func (s *Server) unindexRelay(key string, r *relayPacketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udpRelays[key] == r {
		delete(s.udpRelays, key)
	}
}

// udpRelay returns the UDP relay socket of the relayed address pion
// reports in its events, or nil.
func (s *Server) udpRelay(relay net.Addr) *relayPacketConn {
	if relay == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.udpRelays[relay.String()]
}

// setRelayPermission mirrors a permission event to the UDP relay socket.
func (s *Server) setRelayPermission(relay net.Addr, peer net.IP, ok bool) {
	if r := s.udpRelay(relay); r != nil {
		r.setPermission(peer, ok)
	}
}

// checkIdle closes s.idle once Close has begun and nothing is left open.
func (s *Server) checkIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle == nil || len(s.conns) > 0 || len(s.relays) > 0 {
		return
	}
	select {
	case <-s.idle:
	default:
		close(s.idle)
	}
}

// authHandler is pion's AuthHandler. The userID it returns is the username
// as sent, from which accountOf recovers the quota key and expiry.
func (s *Server) authHandler(ra *turn.RequestAttributes) (string, []byte, bool) {
	keys, reason := s.auth.keys(ra.Username, ra.Realm, time.Now())
	if reason != "" {
		s.m.authFailures.WithLabelValues(reason).Inc()
		s.log.Debug("auth refused", "reason", reason, "client", ra.SrcAddr.String(), "username", ra.Username)
		return "", nil, false
	}
	if k := s.takeStashedKey(ra.SrcAddr, ra.Username); k != nil {
		for _, c := range keys {
			if equalKeys(c, k) {
				return ra.Username, k, true
			}
		}
	}
	return ra.Username, keys[0], true
}

// quotaHandler is pion's QuotaHandler; refusing gives the client 486.
func (s *Server) quotaHandler(userID, _ string, src net.Addr) bool {
	if s.isClosed() {
		return false
	}
	q := s.quota.check(accountOf(userID).quotaKey)
	if q == "" {
		return true
	}
	s.m.quotaRejections.WithLabelValues(q).Inc()
	s.log.Debug("quota reached", "quota", q, "client", src.String(), "username", userID)
	return false
}

// permissionHandler is pion's PermissionHandler on every listener: the
// guard has already applied the filter; this catches anything that reaches
// pion another way.
func (s *Server) permissionHandler(client net.Addr, peer net.IP) bool {
	reason := s.filter.checkIP(peer)
	if reason == reasonNone {
		return true
	}
	a, _ := netip.AddrFromSlice(peer)
	s.peerDenied(reason, client, a)
	return false
}

func (s *Server) eventHandler() turn.EventHandler {
	return turn.EventHandler{
		OnAuth: func(src, _ net.Addr, _, username, _, method string, ok bool) {
			if !ok {
				s.m.authFailures.WithLabelValues(authBadIntegrity).Inc()
				s.log.Debug("auth refused", "reason", authBadIntegrity, "client", src.String(),
					"username", username, "method", method)
			}
		},
		OnAllocationCreated: func(src, dst net.Addr, _, userID, _ string, relay net.Addr, _ int) {
			s.allocs.add(allocKey(src, dst))
			if r := s.udpRelay(relay); r != nil {
				r.setClient(src)
			}
			s.m.allocations.Inc()
			s.m.allocationsTotal.Inc()
			s.log.Debug("allocation created", "client", src.String(), "relay", relay.String(), "username", userID)
		},
		OnAllocationDeleted: func(src, dst net.Addr, _, userID, _ string) {
			s.allocs.remove(allocKey(src, dst))
			s.m.allocations.Dec()
			s.log.Debug("allocation deleted", "client", src.String(), "username", userID)
		},
		OnPermissionCreated: func(src, dst net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
			s.allocs.update(allocKey(src, dst), func(a *allocState) { a.perms[ipKey(peer)] = struct{}{} })
			s.setRelayPermission(relay, peer, true)
		},
		OnPermissionDeleted: func(src, dst net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
			s.allocs.update(allocKey(src, dst), func(a *allocState) { delete(a.perms, ipKey(peer)) })
			s.setRelayPermission(relay, peer, false)
		},
		OnChannelCreated: func(src, dst net.Addr, _, _, _ string, relay, peer net.Addr, ch uint16) {
			s.allocs.update(allocKey(src, dst), func(a *allocState) { a.channels[ch] = struct{}{} })
			if r := s.udpRelay(relay); r != nil {
				r.setChannel(ch, peer, true)
			}
		},
		OnChannelDeleted: func(src, dst net.Addr, _, _, _ string, relay, peer net.Addr, ch uint16) {
			s.allocs.update(allocKey(src, dst), func(a *allocState) { delete(a.channels, ch) })
			if r := s.udpRelay(relay); r != nil {
				r.setChannel(ch, peer, false)
			}
		},
	}
}
