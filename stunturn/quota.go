package stunturn

import (
	"net"
	"net/netip"
	"sync"
)

// quotas counts concurrent allocations per user and in total. Safe for
// concurrent use.
type quotas struct {
	userMax, totalMax int // 0: no limit
	mu                sync.Mutex
	perUser           map[string]int
	total             int
}

func newQuotas(userMax, totalMax int) *quotas {
	return &quotas{userMax: userMax, totalMax: totalMax, perUser: make(map[string]int)}
}

// check returns the quota that one more allocation for key would exceed, or "".
func (q *quotas) check(key string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.checkLocked(key)
}

func (q *quotas) checkLocked(key string) string {
	switch {
	case q.totalMax > 0 && q.total >= q.totalMax:
		return quotaTotal
	case q.userMax > 0 && q.perUser[key] >= q.userMax:
		return quotaUser
	}
	return ""
}

// reserve counts one more allocation for key unless that exceeds a quota,
// whose name it then returns.
func (q *quotas) reserve(key string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r := q.checkLocked(key); r != "" {
		return r
	}
	q.perUser[key]++
	q.total++
	return ""
}

func (q *quotas) release(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.perUser[key]--; q.perUser[key] <= 0 {
		delete(q.perUser, key)
	}
	q.total--
}

// allocState is what the guard needs to know about one allocation to
// enforce MaxPermissions. It is fed by pion's EventHandler.
type allocState struct {
	perms    map[netip.Addr]struct{}
	channels map[uint16]struct{}
}

// allocKey names an allocation by its client 5-tuple the way both pion's
// events and the guard see it: the listener's network, the client address
// and the listener's local address.
func allocKey(src, local net.Addr) string {
	return local.Network() + "|" + src.String() + "|" + local.String()
}

// allocTable tracks open allocations by allocKey. Safe for concurrent use.
type allocTable struct {
	mu sync.Mutex
	m  map[string]*allocState
}

func (t *allocTable) add(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]*allocState)
	}
	t.m[key] = &allocState{perms: make(map[netip.Addr]struct{}), channels: make(map[uint16]struct{})}
}

func (t *allocTable) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

func (t *allocTable) exists(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key] != nil
}

func (t *allocTable) update(key string, f func(*allocState)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.m[key]; a != nil {
		f(a)
	}
}

// overQuota returns the quota that granting peers (and, when channel is
// nonzero, binding channel) would exceed for the allocation at key, or "".
// An unknown allocation is not over quota: pion will refuse the request.
func (t *allocTable) overQuota(key string, max int, peers []netip.Addr, channel uint16) string {
	if max <= 0 {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.m[key]
	if a == nil {
		return ""
	}
	if channel != 0 {
		if _, ok := a.channels[channel]; !ok && len(a.channels) >= max {
			return quotaChannels
		}
	}
	n := len(a.perms)
	seen := make(map[netip.Addr]bool, len(peers))
	for _, p := range peers {
		if _, ok := a.perms[p]; !ok && !seen[p] {
			seen[p] = true
			n++
		}
	}
	if n > max {
		return quotaPermissions
	}
	return ""
}

func ipKey(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
