package chromium

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// cdp is a minimal client of Chromium's DevTools protocol over
// --remote-debugging-pipe: JSON messages, each ended by a NUL byte, written
// to the browser's fd 3 and read from its fd 4. Its methods are safe for
// concurrent use.
type cdp struct {
	wmu sync.Mutex // one message at a time on w
	w   io.WriteCloser

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpReply
	closed  error // set when the read side ends; then no call waits

	onEvent func(method string, params json.RawMessage)
	done    chan struct{} // closed when readLoop returns
}

type cdpReply struct {
	Result json.RawMessage
	Err    error
}

// newCDP starts reading r; onEvent, called from the reading goroutine, sees
// every event. The goroutine ends when the browser closes its end of the
// pipe (it exits); [cdp.wait] waits for that.
func newCDP(w io.WriteCloser, r io.Reader, onEvent func(method string, params json.RawMessage)) *cdp {
	c := &cdp{w: w, pending: make(map[int64]chan cdpReply), onEvent: onEvent, done: make(chan struct{})}
	go c.readLoop(r)
	return c
}

func (c *cdp) readLoop(r io.Reader) {
	defer close(c.done)
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			break
		}
		var m struct {
			ID     int64           `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(bytes.TrimSuffix(msg, []byte{0}), &m) != nil {
			continue
		}
		if m.ID == 0 {
			if c.onEvent != nil {
				c.onEvent(m.Method, m.Params)
			}
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ch == nil {
			continue
		}
		if m.Error != nil {
			ch <- cdpReply{Err: errors.New(m.Error.Message)}
		} else {
			ch <- cdpReply{Result: m.Result}
		}
	}
	// EOF when the browser exits, or our end closed by stop.
	err := errors.New("browser pipe closed")
	c.mu.Lock()
	c.closed = err
	for id, ch := range c.pending {
		ch <- cdpReply{Err: err}
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// call sends method with params to the browser (session "") or to an
// attached target's session, and decodes the result into out (if not nil).
func (c *cdp) call(ctx context.Context, session, method string, params, out any) error {
	ch := make(chan cdpReply, 1)
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, c.closed)
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	msg := struct {
		ID        int64  `json:"id"`
		Method    string `json:"method"`
		Params    any    `json:"params,omitempty"`
		SessionID string `json:"sessionId,omitempty"`
	}{id, method, params, session}
	data, err := json.Marshal(msg)
	if err == nil {
		c.wmu.Lock()
		_, err = c.w.Write(append(data, 0))
		c.wmu.Unlock()
	}
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return fmt.Errorf("%s: %w", method, r.Err)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				return fmt.Errorf("%s: decode result: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// close closes the write end; a browser reading it then exits.
func (c *cdp) close() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Close()
}

// wait waits for the reading goroutine to end.
func (c *cdp) wait() { <-c.done }
