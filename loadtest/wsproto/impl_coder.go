package main

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"
)

// coderImpl is candidate A: github.com/coder/websocket on net/http, one
// goroutine per connection blocked in Read.
type coderImpl struct{ srv *http.Server }

type coderConn struct{ c *websocket.Conn }

// sendText blocks until the frame is written (coder serialises writers).
func (c coderConn) sendText(p []byte) error {
	return c.c.Write(context.Background(), websocket.MessageText, p)
}

func (im *coderImpl) serve(ln net.Listener, h *hub) error {
	im.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		out := coderConn{c}
		var p *peer
		defer func() { h.remove(p); _ = c.CloseNow() }()
		ctx := context.Background()
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			p = h.onMessage(p, out, msg)
		}
	})}
	go func() { _ = im.srv.Serve(ln) }()
	return nil
}

func (im *coderImpl) stop() { _ = im.srv.Close() }
