package main

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// nbioConn adapts *websocket.Conn: WriteMessage never blocks, the rest is
// queued by nbio and flushed by the poller (bounded by MaxWriteBufferSize).
type nbioConn struct{ c *websocket.Conn }

func (c nbioConn) sendText(p []byte) error { return c.c.WriteMessage(websocket.TextMessage, p) }

// nbioConfig is shared by C and D.
func nbioConfig() nbhttp.Config {
	return nbhttp.Config{
		Name:                    "wsproto",
		MaxLoad:                 20000,   // default is 10k connections
		MaxWriteBufferSize:      1 << 20, // close a conn whose unsent data exceeds 1 MiB
		ReleaseWebsocketPayload: true,
	}
}

// nbioUpgrader registers the tracker callbacks. The peer is created from the
// first message (OnMessage calls for one conn are serialised and ordered),
// not in OnOpen: with a transferred std conn (C) OnOpen runs on the net/http
// goroutine and can race with the first OnMessage.
func nbioUpgrader(e *nbhttp.Engine, h *hub) *websocket.Upgrader {
	u := websocket.NewUpgrader()
	u.Engine = e
	u.KeepaliveTime = 10 * time.Minute // read deadline, reset per message
	u.OnMessage(func(c *websocket.Conn, _ websocket.MessageType, data []byte) {
		p, _ := c.Session().(*peer)
		if p == nil {
			c.SetSession(h.onMessage(nil, nbioConn{c}, data))
			return
		}
		h.onMessage(p, nil, data)
	})
	u.OnClose(func(c *websocket.Conn, _ error) {
		p, _ := c.Session().(*peer)
		h.remove(p)
	})
	return u
}

// nbioStdImpl is candidate C: net/http accepts and runs the handler, then
// Upgrade moves the hijacked *net.TCPConn (dup'ed fd) into nbio's epoll
// poller; the net/http goroutine returns.
type nbioStdImpl struct {
	engine *nbhttp.Engine
	srv    *http.Server
}

func (im *nbioStdImpl) serve(ln net.Listener, h *hub) error {
	logging.SetLevel(logging.LevelError)
	im.engine = nbhttp.NewEngine(nbioConfig()) // no Addrs: pollers only
	if err := im.engine.Start(); err != nil {
		return err
	}
	u := nbioUpgrader(im.engine, h)
	u.BlockingModTrasferConnToPoller = true
	im.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = u.Upgrade(w, r, nil) // returns at once; reading happens in the poller
	})}
	go func() { _ = im.srv.Serve(ln) }()
	return nil
}

func (im *nbioStdImpl) stop() {
	_ = im.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = im.engine.Shutdown(ctx)
}

// nbioEngineImpl is candidate D: nbhttp.Engine does accept, HTTP parsing and
// WebSocket framing on its own pollers; no net/http server.
type nbioEngineImpl struct{ engine *nbhttp.Engine }

func (im *nbioEngineImpl) serve(ln net.Listener, h *hub) error {
	logging.SetLevel(logging.LevelError)
	conf := nbioConfig()
	conf.Network, conf.Addrs = "tcp", []string{ln.Addr().String()}
	conf.Listen = func(string, string) (net.Listener, error) { return ln, nil }
	var u *websocket.Upgrader
	conf.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = u.Upgrade(w, r, nil)
	})
	im.engine = nbhttp.NewEngine(conf)
	u = nbioUpgrader(im.engine, h)
	return im.engine.Start()
}

func (im *nbioEngineImpl) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = im.engine.Shutdown(ctx)
}
