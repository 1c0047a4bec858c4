package signal

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// Server is a WebTorrent tracker. It is an http.Handler that upgrades every
// request to a WebSocket, whatever the path; it opens no listener of its own.
// Its methods are safe for concurrent use.
type Server struct {
	cfg   Config
	lim   wire.Limits
	log   *slog.Logger
	m     *metrics
	table *swarmTable

	engine   *nbhttp.Engine
	upgrader *websocket.Upgrader

	mu     sync.Mutex
	conns  map[*conn]struct{}
	perIP  map[netip.Addr]int32
	closed bool

	fed      atomic.Pointer[fedHolder]
	draining atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once
}

// NewServer returns a tracker and starts its event loop and its sweeper;
// Close stops them.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		lim:   wire.Limits{MaxOffers: cfg.MaxOffers, MaxSDPBytes: cfg.MaxSDPBytes, MaxInfoHashes: 255},
		log:   cfg.Logger.With("component", "tracker"),
		m:     newMetrics(cfg.Registerer),
		table: newSwarmTable(),
		conns: make(map[*conn]struct{}),
		perIP: make(map[netip.Addr]int32),
		stop:  make(chan struct{}),
	}
	routeNBIOLogs(cfg.Logger)
	pollers := cfg.Pollers
	if pollers <= 0 {
		pollers = runtime.GOMAXPROCS(0)
	}
	// The engine listens on nothing: it is the event loop that upgraded
	// connections are moved to.
	s.engine = nbhttp.NewEngine(nbhttp.Config{
		Name:                    "signal",
		NPoller:                 pollers,
		ReleaseWebsocketPayload: true,
		MaxWriteBufferSize:      cfg.WriteBufferBytes,
		MaxLoad:                 1 << 20,
		// Handlers run on the event-loop goroutine that read the message:
		// they never block (writes are queued, not waited for), and a hop
		// to a task pool per message costs more than the handler.
		ServerExecutor: func(f func()) { f() },
	})
	if err := s.engine.Start(); err != nil {
		return nil, err
	}
	u := websocket.NewUpgrader()
	u.Engine = s.engine
	u.BlockingModTrasferConnToPoller = true
	// Idle connections are closed by the sweeper, not by a timer per
	// connection (nbio would arm a read deadline of 120 s by default).
	u.KeepaliveTime = 0
	// A wss connection from crypto/tls cannot move to the event loop and is
	// served by a goroutine pair instead; bound its queue in messages.
	u.BlockingModSendQueueMaxSize = 1024
	u.CheckOrigin = func(*http.Request) bool { return true } // pages of any origin use the tracker
	u.MessageLengthLimit = cfg.MaxMessageBytes
	u.OnMessage(s.onMessage)
	u.OnClose(s.onClose)
	s.upgrader = u

	s.wg.Add(1)
	go s.sweep()
	return s, nil
}

// ServeHTTP upgrades the request to a tracker WebSocket.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "tracker shutting down", http.StatusServiceUnavailable)
		return
	}
	ip := remoteIP(r)
	if !s.admit(ip) {
		s.m.refusedUpgrad.Inc()
		http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
		return
	}
	c := &conn{srv: s, ip: ip}
	c.lastActive.Store(time.Now().Unix())
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.release(ip)
		s.log.Debug("upgrade failed", "remote", ip, "err", err)
		return
	}
	c.ws = ws
	ws.SetSession(c)
	s.m.connsTotal.Inc()
	s.mu.Lock()
	switch {
	case c.gone: // the client left already; onClose cleaned up
		s.mu.Unlock()
	case s.closed:
		s.mu.Unlock()
		ws.Close()
	default:
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.m.conns.Add(1)
	}
}

// session returns the conn of ws. The upgrade sets it right after the
// handshake reply, so the first message can in rare cases be read a moment
// before: wait for it, briefly. SessionWithLock takes the lock SetSession
// holds, so what ServeHTTP wrote into the conn before is visible here.
func session(ws *websocket.Conn) *conn {
	var deadline time.Time
	for i := 0; ; i++ {
		if c, ok := ws.SessionWithLock().(*conn); ok {
			return c
		}
		switch {
		case i == 0:
			deadline = time.Now().Add(5 * time.Second)
		case time.Now().After(deadline):
			return nil
		case i < 100:
			runtime.Gosched()
		default:
			time.Sleep(100 * time.Microsecond)
		}
	}
}

func (s *Server) onMessage(ws *websocket.Conn, _ websocket.MessageType, data []byte) {
	// Binary frames are served like text ones: bittorrent-tracker parses
	// both.
	c := session(ws)
	if c == nil {
		ws.Close()
		return
	}
	c.handle(data)
}

func (s *Server) onClose(ws *websocket.Conn, _ error) {
	c := session(ws) // a client may leave before ServeHTTP has set it
	if c == nil {
		return
	}
	s.mu.Lock()
	_, registered := s.conns[c]
	delete(s.conns, c)
	gone := c.gone
	c.gone = true
	s.mu.Unlock()
	if gone {
		return
	}
	c.leave()
	s.release(c.ip)
	if registered {
		s.m.conns.Add(-1)
	}
}

func (s *Server) admit(ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.MaxConnsPerIP >= 0 && int(s.perIP[ip]) >= s.cfg.MaxConnsPerIP {
		return false
	}
	s.perIP[ip]++
	return true
}

func (s *Server) release(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// sweep expires peers, pending offers and idle connections.
func (s *Server) sweep() {
	defer s.wg.Done()
	every := min(s.cfg.PeerTTL, s.cfg.IdleTimeout) / 6
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.expire(now)
		}
	}
}

// expire removes peers silent for PeerTTL and closes connections silent
// for IdleTimeout.
func (s *Server) expire(now time.Time) {
	unix := now.Unix()
	peerCutoff := unix - int64(s.cfg.PeerTTL/time.Second)
	var expired int64
	deleted := s.table.each(func(sw *swarm) {
		for i := len(sw.list) - 1; i >= 0; i-- {
			p := sw.list[i]
			if p.last < peerCutoff {
				sw.remove(p)
				expired++
				if c, ok := p.m.(*conn); ok {
					c.forget(&sw.hash, &p.id)
				}
				continue
			}
			if p.expect != nil {
				p.pruneExpect(unix)
			}
		}
	})
	s.m.peers.Add(-expired)
	s.m.swarms.Add(-int64(deleted))

	idleCutoff := unix - int64(s.cfg.IdleTimeout/time.Second)
	var idle []*conn
	s.mu.Lock()
	for c := range s.conns {
		if c.lastActive.Load() < idleCutoff {
			idle = append(idle, c)
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		s.m.closes.WithLabelValues("idle").Inc()
		c.ws.WriteClose(1000, "idle")
		c.ws.Close()
	}
	if expired > 0 || len(idle) > 0 {
		s.log.Debug("swept", "peers_expired", expired, "swarms_deleted", deleted, "conns_idle", len(idle))
	}
}

// Shutdown stops accepting connections, sends every client a close frame
// (1001 going away) and waits until they are gone or ctx is done; then it
// closes the server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.ws.WriteClose(1001, "tracker shutting down")
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var err error
wait:
	for s.m.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-t.C:
		}
	}
	return errors.Join(err, s.Close())
}

// Close closes every connection and stops the event loop and the sweeper.
// It is idempotent and returns when they are gone.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.draining.Store(true)
		close(s.stop)
		s.wg.Wait()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.engine.Stop()
		// Connections the engine did not report closed are cleaned here.
		s.mu.Lock()
		rest := s.conns
		s.conns = map[*conn]struct{}{}
		s.mu.Unlock()
		for c := range rest {
			c.ws.Close()
			s.mu.Lock()
			gone := c.gone
			c.gone = true
			s.mu.Unlock()
			if !gone {
				c.leave()
				s.m.conns.Add(-1)
			}
		}
	})
	return nil
}
