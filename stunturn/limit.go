package stunturn

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// bucket is a token bucket counting bytes (or requests). A nil *bucket
// allows everything. Safe for concurrent use.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate, burst float64) *bucket {
	if rate <= 0 {
		return nil
	}
	return &bucket{rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

// byteBucket is a bucket for a bandwidth of rate bytes/s. Its burst is 100 ms
// worth of traffic but at least 16 KiB, so a video keyframe passes whole yet
// a cap measured over a few seconds holds to a few percent.
func byteBucket(rate int64) *bucket {
	if rate <= 0 {
		return nil
	}
	return newBucket(float64(rate), max(float64(rate)/10, 16<<10))
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(b.burst, b.tokens+d*b.rate)
		b.last = now
	}
}

// allow takes n tokens if they are there and reports whether it did.
func (b *bucket) allow(n float64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(time.Now())
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// take takes n tokens, going into debt if needed, and returns how long the
// caller must wait for the debt to be repaid. Used where back-pressure is
// right (TCP relays), rather than dropping.
func (b *bucket) take(n float64) time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(time.Now())
	b.tokens -= n
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// full reports whether the bucket has refilled to its burst, i.e. is
// indistinguishable from a fresh one.
func (b *bucket) full(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens >= b.burst
}

// maxLimitedSources bounds the per-source map. Past it, sources whose bucket
// has refilled are forgotten; if that is not enough the map is reset, which
// briefly lets everyone through rather than locking newcomers out.
const maxLimitedSources = 1 << 16

// sourceLimiter rate-limits per source address; IPv6 sources are grouped by
// /64, since one host usually holds a whole /64. A nil *sourceLimiter
// allows everything. Safe for concurrent use.
type sourceLimiter struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[netip.Addr]*bucket
}

func newSourceLimiter(perSecond float64) *sourceLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &sourceLimiter{rate: perSecond, burst: max(8, 4*perSecond), buckets: make(map[netip.Addr]*bucket)}
}

func sourceKey(addr net.Addr) netip.Addr {
	var ip net.IP
	switch a := addr.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		if ap, err := netip.ParseAddrPort(addr.String()); err == nil {
			return prefixKey(ap.Addr())
		}
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(ip)
	return prefixKey(a)
}

func prefixKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// allow reports whether src may have one more unauthenticated request now.
func (l *sourceLimiter) allow(src net.Addr) bool {
	if l == nil {
		return true
	}
	return l.allowKey(sourceKey(src))
}

// allowAddr is allow for a source IP as the UDP fast path reads it.
func (l *sourceLimiter) allowAddr(ip netip.Addr) bool {
	if l == nil {
		return true
	}
	return l.allowKey(prefixKey(ip))
}

func (l *sourceLimiter) allowKey(k netip.Addr) bool {
	l.mu.Lock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxLimitedSources {
			l.sweepLocked()
		}
		b = newBucket(l.rate, l.burst)
		l.buckets[k] = b
	}
	l.mu.Unlock()
	return b.allow(1)
}

func (l *sourceLimiter) sweepLocked() {
	now := time.Now()
	for k, b := range l.buckets {
		if b.full(now) {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxLimitedSources*3/4 {
		clear(l.buckets)
	}
}
