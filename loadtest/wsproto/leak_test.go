package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"go.uber.org/goleak"
)

// TestStartStopNoLeak runs each candidate through announce, one relayed
// message (to itself: it is the only peer) and a close handshake, then
// checks that stop() leaves no goroutines behind.
func TestStartStopNoLeak(t *testing.T) {
	for _, name := range []string{"a", "b", "c", "d"} {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			im, _ := newImpl(name)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			h := newHub()
			if err := im.serve(ln, h); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, _, _, err := ws.Dial(ctx, "ws://"+ln.Addr().String()+"/ws")
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			msg := message(300)
			for range 2 {
				if err := wsutil.WriteClientText(c, msg); err != nil {
					t.Fatal(err)
				}
			}
			got, _, err := wsutil.ReadServerData(c)
			if err != nil || string(got) != string(msg) {
				t.Fatalf("relay: %v %q", err, got)
			}
			_ = ws.WriteFrame(c, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			_, _ = ws.ReadHeader(c) // close reply or EOF
			_ = c.Close()
			for i := 0; h.count() > 0 && i < 100; i++ {
				time.Sleep(20 * time.Millisecond)
			}
			if n := h.count(); n != 0 {
				t.Errorf("%d peers left after close", n)
			}
			im.stop()
		})
	}
}
