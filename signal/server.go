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
	"github.com/gobwas/ws"
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

	loops []*loop // event loops; none where the system has no epoll
	next  atomic.Uint32

	mu     sync.Mutex
	conns  map[*conn]struct{}
	perIP  map[netip.Addr]int32
	closed bool

	fed      atomic.Pointer[fedHolder]
	draining atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup // the sweeper
	streams  sync.WaitGroup // streams' readers and writers
	once     sync.Once
}

// errNoLoop is newLoop's answer where the system has no epoll: every
// connection is then a stream.
var errNoLoop = errors.New("signal: no event loop on this system")

// NewServer returns a tracker and starts its event loops and its sweeper;
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
	pollers := cfg.Pollers
	if pollers <= 0 {
		pollers = (runtime.GOMAXPROCS(0) + 1) / 2
	}
	for range pollers {
		l, err := newLoop(s)
		if errors.Is(err, errNoLoop) {
			break
		}
		if err != nil {
			for _, l := range s.loops {
				l.stop()
			}
			return nil, err
		}
		s.loops = append(s.loops, l)
	}
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
	// The upgrader hijacks the connection and writes the 101, or the HTTP
	// error refusing a bad handshake.
	nc, rw, _, err := upgrader.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			nc.Close()
		}
		s.release(ip)
		s.log.Debug("upgrade refused", "remote", ip, "err", err)
		return
	}
	// What the client sent after its request (frames, if it did not wait
	// for the reply) is served first.
	early, _ := rw.Reader.Peek(rw.Reader.Buffered())
	early = append([]byte(nil), early...)

	c := &conn{srv: s, ip: ip, fd: -1}
	c.lastActive.Store(time.Now().Unix())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		s.release(ip)
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.m.connsTotal.Inc()
	s.m.conns.Add(1)

	if len(s.loops) > 0 {
		if fd, ok := socketOf(nc); ok {
			s.serveLoop(c, fd, early)
			return
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		s.finish(c)
		return
	}
	s.streams.Add(1) // under s.mu, so that Close waits for it
	s.mu.Unlock()
	defer s.streams.Done()
	s.serveStream(c, nc, early)
}

// serveLoop puts c's socket on an event loop, after serving what the client
// sent early.
func (s *Server) serveLoop(c *conn, fd int, early []byte) {
	c.wmu.Lock()
	c.fd = fd
	c.wmu.Unlock()
	if len(early) > 0 {
		used, closing := c.consume(nil, new(frameReader), early)
		if closing {
			s.closeUnattached(c)
			return
		}
		c.partial = append([]byte(nil), early[used:]...)
	}
	l := s.loops[int(s.next.Add(1))%len(s.loops)]
	if err := l.attach(c, fd); err != nil {
		s.closeUnattached(c)
	}
}

// closeUnattached closes the socket of a connection that is on no loop.
func (s *Server) closeUnattached(c *conn) {
	c.wmu.Lock()
	if c.out != nil && !c.waitOut {
		sendNoSignal(c.fd, (*c.out)[c.sent:])
	}
	c.closing, c.fdClosed = true, true
	c.dropOutLocked()
	closeFD(c.fd)
	c.wmu.Unlock()
	s.finish(c)
}

// serveStream reads a connection that no event loop can take (TLS, or no
// epoll) until it closes; its writes go through a writer goroutine.
func (s *Server) serveStream(c *conn, nc net.Conn, early []byte) {
	c.wmu.Lock()
	c.nc = nc
	c.wmu.Unlock()
	defer func() {
		closeStream(nc)
		c.wmu.Lock()
		c.closing, c.fdClosed = true, true
		c.dropOutLocked()
		c.wmu.Unlock()
		s.finish(c)
	}()
	buf := make([]byte, max(4096, len(early)))
	n := copy(buf, early)
	maxFrame := ws.MaxHeaderSize + s.cfg.MaxMessageBytes
	var fr frameReader
	for {
		if n > 0 {
			used, closing := c.consume(nil, &fr, buf[:n])
			if closing {
				return
			}
			n = copy(buf, buf[used:n])
		}
		if n == len(buf) { // a frame longer than the buffer
			if len(buf) >= maxFrame {
				return
			}
			buf = append(buf, make([]byte, min(len(buf), maxFrame-len(buf)))...)
		}
		k, err := nc.Read(buf[n:])
		n += k
		if err != nil && k == 0 {
			return
		}
	}
}

// finish cleans up after a connection whose socket is closed. It runs once
// per connection, whoever gets there first.
func (s *Server) finish(c *conn) {
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
				p.dropIdleExpect()
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
		s.m.closes.WithLabelValues(closeIdle).Inc()
		c.sendClose(nil, ws.StatusNormalClosure, "idle")
		c.close()
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
		c.sendClose(nil, ws.StatusGoingAway, "tracker shutting down")
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

// Close closes every connection and stops the event loops and the sweeper.
// It is idempotent and returns when they are gone.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.draining.Store(true)
		close(s.stop)
		s.wg.Wait()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		for _, l := range s.loops {
			l.stop() // closes its connections
		}
		s.mu.Lock()
		rest := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			rest = append(rest, c)
		}
		s.mu.Unlock()
		for _, c := range rest {
			c.close() // streams, and sockets being attached: their goroutines clean up
		}
		s.streams.Wait()
	})
	return nil
}
