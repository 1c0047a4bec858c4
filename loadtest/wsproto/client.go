package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// message returns a JSON text message of about size bytes.
func message(size int) []byte {
	head := `{"action":"announce","info_hash":"0123456789abcdefghij","peer_id":"-WW0001-abcdefghijkl","numwant":50,"pad":"`
	tail := `"}`
	pad := max(size-len(head)-len(tail), 0)
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// runClient opens o.n connections (gobwas/ws client, bounded concurrency),
// sends one message on each and prints READY. In echo mode it then waits for
// "go" and runs a closed loop for o.duration: every received message is
// answered by sending one more, so o.n messages are always in flight.
func runClient(o options) error {
	msg := message(o.msgSize)
	conns := make([]net.Conn, o.n)
	readers := make([]io.Reader, o.n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range o.n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, br, _, err := ws.Dialer{Timeout: 10 * time.Second}.Dial(ctx, "ws://"+o.addr+"/ws")
			if err != nil {
				failed.Add(1)
				return
			}
			var r io.Reader = c
			if br != nil {
				r = br
			}
			conns[i], readers[i] = c, r
			if o.mode == "idle" {
				if err := wsutil.WriteClientText(c, msg); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	if failed.Load() > 0 {
		fmt.Fprintf(os.Stderr, "client: %d connections failed\n", failed.Load())
	}
	if o.mode == "echo" {
		// First message announces every peer; the loop starts on "go".
		for _, c := range conns {
			if c != nil {
				_ = wsutil.WriteClientText(c, msg)
			}
		}
	}
	fmt.Printf("READY conns=%d\n", int64(o.n)-failed.Load())
	sc := bufio.NewScanner(os.Stdin)
	if !sc.Scan() || sc.Text() != "go" || o.mode != "echo" {
		return nil // idle: hold the connections until stdin closes
	}
	var received atomic.Int64
	var stopped atomic.Bool
	var loops sync.WaitGroup
	for i, c := range conns {
		if c == nil {
			continue
		}
		loops.Go(func() {
			rw := struct {
				io.Reader
				io.Writer
			}{readers[i], c}
			_ = wsutil.WriteClientText(c, msg)
			for {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, _, err := wsutil.ReadServerData(rw); err != nil {
					return
				}
				if stopped.Load() {
					continue // drain, do not refill
				}
				received.Add(1)
				if err := wsutil.WriteClientText(c, msg); err != nil {
					return
				}
			}
		})
	}
	time.Sleep(o.duration)
	stopped.Store(true)
	fmt.Printf("DONE received=%d\n", received.Load())
	loops.Wait() // every reader ends by its 2 s read deadline
	return nil
}
