package bugout

import "time"

// expiringSet remembers keys for a fixed time, oldest first, and holds at
// most max of them: past that the oldest is forgotten early. Not safe for
// concurrent use.
type expiringSet[K comparable] struct {
	ttl   time.Duration
	max   int
	at    map[K]time.Time
	queue []entry[K] // insertion order; head is the oldest
	head  int
}

type entry[K comparable] struct {
	key K
	at  time.Time
}

func newExpiringSet[K comparable](ttl time.Duration, max int) *expiringSet[K] {
	return &expiringSet[K]{ttl: ttl, max: max, at: make(map[K]time.Time)}
}

// add records key at now. It reports false if key was already there.
func (s *expiringSet[K]) add(key K, now time.Time) bool {
	s.expire(now)
	if _, ok := s.at[key]; ok {
		return false
	}
	for len(s.at) >= s.max {
		s.pop()
	}
	s.at[key] = now
	s.queue = append(s.queue, entry[K]{key, now})
	return true
}

// has reports whether key is remembered.
func (s *expiringSet[K]) has(key K, now time.Time) bool {
	s.expire(now)
	_, ok := s.at[key]
	return ok
}

func (s *expiringSet[K]) expire(now time.Time) {
	for s.head < len(s.queue) && now.Sub(s.queue[s.head].at) > s.ttl {
		s.pop()
	}
}

func (s *expiringSet[K]) pop() {
	e := s.queue[s.head]
	s.queue[s.head] = entry[K]{}
	s.head++
	if at, ok := s.at[e.key]; ok && at.Equal(e.at) {
		delete(s.at, e.key)
	}
	if s.head > 1024 && s.head*2 > len(s.queue) {
		s.queue = append([]entry[K](nil), s.queue[s.head:]...)
		s.head = 0
	}
}
