package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sender writes one text message to a peer's connection.
type sender interface {
	sendText(p []byte) error
}

// peer is the small per-connection state the tracker would keep (~100 bytes).
type peer struct {
	id        uint64
	idx       int // position in hub.list
	peerID    [20]byte
	infoHash  [20]byte
	announced int64
	numWant   uint16
	out       sender
}

// hub holds announced peers: a map like the tracker's, plus a slice for
// picking a random relay target.
type hub struct {
	mu      sync.Mutex
	peers   map[uint64]*peer
	list    []*peer
	nextID  uint64
	relayed atomic.Int64
}

func newHub() *hub { return &hub{peers: make(map[uint64]*peer)} }

// announce registers a peer from its first message.
func (h *hub) announce(out sender, msg []byte) *peer {
	p := &peer{out: out, announced: time.Now().Unix(), numWant: 50}
	copy(p.peerID[:], msg)
	if len(msg) > 20 {
		copy(p.infoHash[:], msg[20:])
	}
	h.mu.Lock()
	h.nextID++
	p.id = h.nextID
	p.idx = len(h.list)
	h.peers[p.id] = p
	h.list = append(h.list, p)
	h.mu.Unlock()
	return p
}

func (h *hub) remove(p *peer) {
	if p == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.peers[p.id] != p {
		return
	}
	delete(h.peers, p.id)
	last := h.list[len(h.list)-1]
	h.list[p.idx] = last
	last.idx = p.idx
	h.list = h.list[:len(h.list)-1]
}

// onMessage is the whole "tracker": the first message announces the peer,
// later ones are relayed to a random other peer (like an offer).
func (h *hub) onMessage(p *peer, out sender, msg []byte) *peer {
	if p == nil {
		return h.announce(out, msg)
	}
	h.mu.Lock()
	t := h.list[rand.IntN(len(h.list))]
	if t == p && len(h.list) > 1 {
		t = h.list[(t.idx+1)%len(h.list)]
	}
	h.mu.Unlock()
	if t.out.sendText(msg) == nil {
		h.relayed.Add(1)
	}
	return p
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.peers)
}

// impl is one candidate WebSocket stack serving on ln until stop.
type impl interface {
	serve(ln net.Listener, h *hub) error
	stop()
}

func newImpl(name string) (impl, error) {
	switch name {
	case "a":
		return &coderImpl{}, nil
	case "b":
		return &gobwasImpl{}, nil
	case "c":
		return &nbioStdImpl{}, nil
	case "d":
		return &nbioEngineImpl{}, nil
	}
	return nil, fmt.Errorf("unknown -impl %q", name)
}

// runServer serves and answers "count" and "stats" commands on stdin until EOF.
func runServer(o options) error {
	im, err := newImpl(o.impl)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h := newHub()
	if err := im.serve(ln, h); err != nil {
		return err
	}
	defer im.stop()
	fmt.Printf("ADDR addr=%s\n", ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "count":
			fmt.Printf("COUNT peers=%d relayed=%d goroutines=%d\n", h.count(), h.relayed.Load(), runtime.NumGoroutine())
		case "stats":
			for range 2 {
				runtime.GC()
				debug.FreeOSMemory()
				time.Sleep(o.settle / 2)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("STATS peers=%d rss=%d heapinuse=%d stackinuse=%d goroutines=%d\n",
				h.count(), rss(), ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine())
		}
	}
	return nil
}

// rss returns VmRSS of this process in bytes.
func rss() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
