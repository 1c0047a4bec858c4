package dht

import (
	"sync"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// limits are the token buckets on offers arriving from other Boxes: per
// Box (friends by their friends-file line or FriendRate, others by
// StrangerRate), per Box and room, and for all Boxes together.
type limits struct {
	cfg *Config

	mu    sync.Mutex
	all   *rate.Limiter
	boxes map[peer.ID]*rate.Limiter
	rooms map[roomOf]*rate.Limiter
	swept time.Time
}

type roomOf struct {
	box peer.ID
	ih  wire.Hash
}

func newLimits(cfg *Config) *limits {
	l := &limits{cfg: cfg}
	l.reset()
	return l
}

// reset forgets every bucket (the friend list changed).
func (l *limits) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = rate.NewLimiter(rate.Limit(l.cfg.BoxRate), l.cfg.BoxBurst)
	l.boxes = make(map[peer.ID]*rate.Limiter)
	l.rooms = make(map[roomOf]*rate.Limiter)
}

// allow takes k tokens from each bucket p's offers in ih pass, or none.
func (l *limits) allow(f *Friend, p peer.ID, ih *wire.Hash, k int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		l.sweep(now)
	}
	b := l.boxes[p]
	if b == nil {
		r, burst := l.cfg.StrangerRate, l.cfg.StrangerBurst
		if f != nil {
			r, burst = l.cfg.FriendRate, l.cfg.FriendBurst
			if f.Rate > 0 {
				r = f.Rate
			}
			if f.Burst > 0 {
				burst = f.Burst
			}
		}
		b = rate.NewLimiter(rate.Limit(r), burst)
		l.boxes[p] = b
	}
	key := roomOf{p, *ih}
	rb := l.rooms[key]
	if rb == nil {
		rb = rate.NewLimiter(rate.Limit(l.cfg.RoomRate), l.cfg.RoomBurst)
		l.rooms[key] = rb
	}
	// Reserve from all three, and give back if any says no.
	rs := [3]*rate.Reservation{l.all.ReserveN(now, k), b.ReserveN(now, k), rb.ReserveN(now, k)}
	ok := true
	for _, r := range rs {
		if !r.OK() || r.DelayFrom(now) > 0 {
			ok = false
		}
	}
	if !ok {
		for _, r := range rs {
			r.CancelAt(now)
		}
	}
	return ok
}

// sweep drops full room buckets, so the map holds only rooms in use.
func (l *limits) sweep(now time.Time) {
	l.swept = now
	for k, b := range l.rooms {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.rooms, k)
		}
	}
	for k, b := range l.boxes {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.boxes, k)
		}
	}
}
