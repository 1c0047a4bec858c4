package signal_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
)

// Tests of the WebSocket layer on raw sockets: what browsers and other
// clients may do that a WebSocket library in the test would hide.

const upgradeRequest = "GET /announce HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// rawWS opens a WebSocket by hand, sending early right after the request
// (before the reply), and returns the socket and a reader past the reply.
func rawWS(t *testing.T, url string, early []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	host := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := append([]byte(fmt.Sprintf(upgradeRequest, host)), early...)
	if _, err := nc.Write(req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return nc, br
}

// clientFrame is one masked client frame.
func clientFrame(op byte, fin bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

// serverFrame reads one frame from the tracker, which must be final and
// unmasked.
func serverFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if h[0]&0x80 == 0 || h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		t.Fatalf("frame header %x: want final, no reserved bits, unmasked", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return h[0] & 0x0F, payload
}

func scrapeFrame() []byte { return clientFrame(0x1, true, []byte(`{"action":"scrape"}`)) }

func wantScrapeReply(t *testing.T, br *bufio.Reader) {
	t.Helper()
	op, p := serverFrame(t, br)
	var m map[string]any
	if op != 0x1 || json.Unmarshal(p, &m) != nil || m["action"] != "scrape" {
		t.Fatalf("got frame %x %q, want a scrape reply", op, p)
	}
}

// wantClosed reads a close frame with code (0 for none) and then the end of
// the stream.
func wantClosed(t *testing.T, br *bufio.Reader, code uint16) {
	t.Helper()
	op, p := serverFrame(t, br)
	if op != 0x8 {
		t.Fatalf("got frame %x %q, want a close frame", op, p)
	}
	if got := uint16(0); len(p) >= 2 {
		got = binary.BigEndian.Uint16(p)
		if got != code {
			t.Fatalf("close code %d (%q), want %d", got, p[2:], code)
		}
	} else if code != 0 {
		t.Fatalf("close frame %q without a code, want %d", p, code)
	}
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("byte %x after the close frame, want the end of the stream", b)
	}
}

func TestWebSocketFramesSentWithTheUpgrade(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	// A client that does not wait for the 101: its frames arrive with the
	// request and are served first, in order.
	_, br := rawWS(t, tr.url, append(scrapeFrame(), scrapeFrame()...))
	wantScrapeReply(t, br)
	wantScrapeReply(t, br)
}

func TestWebSocketFragmentsAndControlFrames(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	nc, br := rawWS(t, tr.url, nil)
	msg := []byte(`{"action":"scrape"}`)
	var b []byte
	b = append(b, clientFrame(0x1, false, msg[:5])...)
	b = append(b, clientFrame(0x9, true, []byte("ping 1"))...) // control frames may come between fragments
	b = append(b, clientFrame(0x0, false, msg[5:9])...)
	b = append(b, clientFrame(0x0, true, msg[9:])...)
	b = append(b, clientFrame(0xA, true, []byte("unsolicited pong"))...)
	b = append(b, clientFrame(0x1, true, nil)...) // an empty message gets no reply
	b = append(b, scrapeFrame()...)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	if op, p := serverFrame(t, br); op != 0xA || string(p) != "ping 1" {
		t.Fatalf("got %x %q, want the pong", op, p)
	}
	wantScrapeReply(t, br)
	wantScrapeReply(t, br)
}

func TestWebSocketFrameInPieces(t *testing.T) {
	tr := newTracker(t, signal.Config{MaxMessageBytes: 200 << 10, MaxSDPBytes: 16 << 10})
	nc, br := rawWS(t, tr.url, nil)
	// A frame with a 64-bit length, written a few bytes at a time: the
	// event loop keeps what it has until the frame is whole.
	msg := []byte(`{"action":"scrape","pad":"` + strings.Repeat("x", 70<<10) + `"}`)
	f := clientFrame(0x1, true, msg)
	for i := 0; len(f) > 0; i++ {
		n := min(len(f), 7000)
		if i < 20 {
			n = 1 // split the header too
		}
		if _, err := nc.Write(f[:n]); err != nil {
			t.Fatal(err)
		}
		f = f[n:]
		time.Sleep(time.Millisecond)
	}
	wantScrapeReply(t, br)
}

func TestWebSocketCloseHandshake(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	for _, tc := range []struct {
		name    string
		payload []byte
		want    uint16
	}{
		{"code and reason echoed", append(binary.BigEndian.AppendUint16(nil, 1000), "bye"...), 1000},
		{"no code", nil, 0},
		{"code only", binary.BigEndian.AppendUint16(nil, 4001), 4001},
		{"reserved code", binary.BigEndian.AppendUint16(nil, 1005), 1002},
		{"code for TLS failures", binary.BigEndian.AppendUint16(nil, 1015), 1002},
		{"code not defined", binary.BigEndian.AppendUint16(nil, 1012), 1002},
		{"code past the private range", binary.BigEndian.AppendUint16(nil, 5000), 1002},
		{"one byte", []byte{3}, 1002},
		{"reason not UTF-8", append(binary.BigEndian.AppendUint16(nil, 1000), 0xff), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := rawWS(t, tr.url, nil)
			nc.Write(clientFrame(0x8, true, tc.payload))
			wantClosed(t, br, tc.want)
		})
	}
	waitFor(t, func() bool { return gauge(t, tr, "signald_tracker_connections") == 0 })
}

func TestWebSocketProtocolErrorsClose(t *testing.T) {
	tr := newTracker(t, signal.Config{MaxMessageBytes: 1 << 10, MaxSDPBytes: 512})
	rsv := scrapeFrame()
	rsv[0] |= 0x40
	unmasked := append([]byte{0x81, byte(len(`{"action":"scrape"}`))}, `{"action":"scrape"}`...)
	for _, tc := range []struct {
		name  string
		frame []byte
		code  uint16 // of the close frame; 0 for a close without one
	}{
		{"reserved bit", rsv, 0},
		{"unmasked", unmasked, 0},
		{"length with its top bit set", []byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 0},
		{"continuation without a start", clientFrame(0x0, true, []byte("x")), 0},
		{"unknown opcode", clientFrame(0x3, true, []byte("x")), 0},
		{"fragmented ping", clientFrame(0x9, false, []byte("x")), 0},
		{"new message inside a fragmented one", append(clientFrame(0x1, false, []byte("{")), scrapeFrame()...), 0},
		{"ping too long", clientFrame(0x9, true, make([]byte, 126)), 1009},
		{"message too long", clientFrame(0x2, true, make([]byte, 1025)), 1009},
		{"fragments too long", append(clientFrame(0x1, false, make([]byte, 600)), clientFrame(0x0, true, make([]byte, 600))...), 1009},
		{"text not UTF-8", clientFrame(0x1, true, []byte("{\"action\":\"\xff\"}")), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := rawWS(t, tr.url, nil)
			nc.Write(tc.frame)
			if tc.code != 0 {
				wantClosed(t, br, tc.code)
				return
			}
			if b, err := br.ReadByte(); err == nil {
				t.Fatalf("got byte %x, want the socket closed", b)
			}
		})
	}
	waitFor(t, func() bool { return gauge(t, tr, "signald_tracker_connections") == 0 })
}

func TestWebSocketUpgradeRefused(t *testing.T) {
	tr := newTracker(t, signal.Config{})
	for _, tc := range []struct {
		name   string
		mod    func(h http.Header)
		method string
		want   int
	}{
		{"no upgrade header", func(h http.Header) { h.Del("Upgrade") }, "GET", http.StatusBadRequest},
		{"no connection upgrade", func(h http.Header) { h.Set("Connection", "keep-alive") }, "GET", http.StatusBadRequest},
		// RFC 6455 §4.4: 426 and the version the server speaks.
		{"wrong version", func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, "GET", http.StatusUpgradeRequired},
		{"no version", func(h http.Header) { h.Del("Sec-WebSocket-Version") }, "GET", http.StatusBadRequest},
		{"no key", func(h http.Header) { h.Del("Sec-WebSocket-Key") }, "GET", http.StatusBadRequest},
		{"key not 16 bytes", func(h http.Header) { h.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, "GET", http.StatusBadRequest},
		{"POST", func(http.Header) {}, "POST", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http"+strings.TrimPrefix(tr.url, "ws"), nil)
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Connection", "keep-alive, Upgrade")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Sec-WebSocket-Version", "13")
			tc.mod(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestStreamsOverTLS serves clients over crypto/tls, which no event loop can
// read: each connection is a stream with a reader and a writer goroutine.
func TestStreamsOverTLS(t *testing.T) {
	s, err := signal.NewServer(signal.Config{Registerer: prometheus.NewRegistry(), AnnounceRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	url := "wss" + strings.TrimPrefix(ts.URL, "https")
	dialTLS := func() *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: ts.Client()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		return ws
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(ws *websocket.Conn, m map[string]any) {
		b, _ := json.Marshal(m)
		if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	recv := func(ws *websocket.Conn) map[string]any {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	ih := id("tls")
	a, b := dialTLS(), dialTLS()
	send(a, announce(ih, id("a"), map[string]any{"event": "started"}))
	recv(a)
	send(b, announce(ih, id("b"), map[string]any{"offers": offers(1, "t")}))
	if r := recv(b); num(r, "incomplete") != 2 {
		t.Fatalf("reply %v", r)
	}
	o := recv(a)
	if o["offer"] == nil {
		t.Fatalf("want an offer, got %v", o)
	}
	send(a, answerMsg(bin(ih), bin(id("a")), bin(id("b")), str(o, "offer_id")))
	if r := recv(b); r["answer"] == nil {
		t.Fatalf("want the answer, got %v", r)
	}
	if st := s.Stats(); st.Connections != 2 || st.PeersAll != 2 {
		t.Fatalf("stats %+v", st)
	}
	a.Close(websocket.StatusNormalClosure, "")
	waitFor(t, func() bool { return s.Stats().Connections == 1 })
}

// FuzzFrames sends each input as raw bytes after the opening handshake,
// then ends the stream. Whatever the bytes, the tracker must reply only with
// final, unmasked frames of known opcodes and then close the socket.
func FuzzFrames(f *testing.F) {
	rsv := scrapeFrame()
	rsv[0] |= 0x40
	for _, seed := range [][]byte{
		scrapeFrame(),
		append(scrapeFrame(), scrapeFrame()...),
		append(clientFrame(0x1, false, []byte(`{"action":`)), clientFrame(0x0, true, []byte(`"scrape"}`))...),
		clientFrame(0x9, true, []byte("ping")),
		clientFrame(0x8, true, binary.BigEndian.AppendUint16(nil, 1000)),
		clientFrame(0x8, true, []byte{3}),
		clientFrame(0x1, true, make([]byte, 2000)),
		clientFrame(0x1, true, []byte("{\"action\":\"\xff\"}")),
		rsv,
		{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4},
		{0x81, 0x13},
	} {
		f.Add(seed)
	}
	tr := newTracker(f, signal.Config{MaxMessageBytes: 1 << 10, MaxSDPBytes: 512})
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, br := rawWS(t, tr.url, data)
		nc.(*net.TCPConn).CloseWrite()
		for {
			// The tracker may reset rather than close a socket it did not
			// read to the end; both end the stream.
			h, err := ws.ReadHeader(br)
			if err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
				return
			}
			if err != nil {
				t.Fatalf("read frame header: %v", err)
			}
			if !h.Fin || h.Rsv != 0 || h.Masked || h.OpCode.IsReserved() || h.OpCode == ws.OpContinuation {
				t.Fatalf("frame header %+v: want final, no reserved bits, unmasked, a known opcode", h)
			}
			if _, err := io.CopyN(io.Discard, br, h.Length); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read payload: %v", err)
			}
		}
	})
}
