package signal

import (
	"math/rand/v2"
	"sync"

	"github.com/boxsignal/boxsignal/signal/wire"
)

// peer is one peer_id in one swarm.
type peer struct {
	id     wire.Hash
	m      Member
	last   int64 // unix seconds of the last announce
	idx    int   // position in swarm.list
	seeder bool
	// expect lists the offers relayed to this peer that it may answer, so
	// that an answer the tracker did not ask for is never delivered.
	expect []expectation
}

type expectation struct {
	from, offerID wire.Hash
	deadline      int64 // unix seconds
	// back receives the answer when the offerer is on another Box; nil
	// means the offerer is a local peer of the swarm.
	back Member
}

// maxExpect bounds a peer's pending offers; the oldest goes first. Clients
// offer 5 (at most 10) per 120 s interval, so 64 covers several offerers.
const maxExpect = 64

func (p *peer) addExpect(e expectation, now int64) {
	p.pruneExpect(now)
	if len(p.expect) == maxExpect {
		copy(p.expect, p.expect[1:])
		p.expect[maxExpect-1] = expectation{}
		p.expect = p.expect[:maxExpect-1]
	}
	p.expect = append(p.expect, e)
}

// takeExpect removes the pending offer (from, offerID) and reports whether it
// was there and fresh, and where its answer goes when the offerer is remote:
// an answer is delivered once.
func (p *peer) takeExpect(from, offerID *wire.Hash, now int64) (back Member, ok bool) {
	for i := range p.expect {
		e := &p.expect[i]
		if e.offerID == *offerID && e.from == *from {
			back, ok = e.back, e.deadline >= now
			n := len(p.expect) - 1
			copy(p.expect[i:], p.expect[i+1:])
			p.expect[n] = expectation{} // drop the reference to back
			p.expect = p.expect[:n]
			return back, ok
		}
	}
	return nil, false
}

// pruneExpect drops the pending offers past their deadline. It keeps the
// backing array, which a busy peer would otherwise allocate again and
// again as its list empties and fills; the sweeper drops the arrays of
// peers left with none (dropIdleExpect).
func (p *peer) pruneExpect(now int64) {
	n := 0
	for _, e := range p.expect {
		if e.deadline >= now {
			p.expect[n] = e
			n++
		}
	}
	clear(p.expect[n:])
	p.expect = p.expect[:n]
}

// dropIdleExpect releases the backing array of a peer with no pending
// offers: idle peers hold none.
func (p *peer) dropIdleExpect() {
	if len(p.expect) == 0 {
		p.expect = nil
	}
}

// swarm is the peers of one info_hash. Its lock covers its peers and counts.
type swarm struct {
	mu         sync.Mutex
	hash       wire.Hash
	peers      map[wire.Hash]*peer
	list       []*peer // the same peers, for uniform random picks
	seeders    int
	downloaded int  // completed events
	dead       bool // removed from its shard; joiners must look it up again
}

func (s *swarm) add(p *peer) {
	p.idx = len(s.list)
	s.list = append(s.list, p)
	s.peers[p.id] = p
	if p.seeder {
		s.seeders++
	}
}

func (s *swarm) remove(p *peer) {
	last := s.list[len(s.list)-1]
	s.list[p.idx] = last
	last.idx = p.idx
	s.list[len(s.list)-1] = nil
	s.list = s.list[:len(s.list)-1]
	delete(s.peers, p.id)
	if p.seeder {
		s.seeders--
	}
}

func (s *swarm) setSeeder(p *peer, seeder bool) {
	if p.seeder == seeder {
		return
	}
	p.seeder = seeder
	if seeder {
		s.seeders++
	} else {
		s.seeders--
	}
}

func (s *swarm) counts() (complete, incomplete int) {
	return s.seeders, len(s.list) - s.seeders
}

// pick chooses up to k distinct peers other than self, each equally likely,
// and appends them to dst.
func (s *swarm) pick(dst []*peer, self *peer, k int) []*peer {
	n := len(s.list)
	others := n
	if self != nil {
		others--
	}
	if k >= others {
		for _, p := range s.list {
			if p != self {
				dst = append(dst, p)
			}
		}
		rand.Shuffle(len(dst), func(i, j int) { dst[i], dst[j] = dst[j], dst[i] })
		return dst
	}
	// Robert Floyd's sampling of k indices from the others, then mapped past
	// self's slot: uniform, no scratch space beyond dst.
	start := len(dst)
	for j := others - k; j < others; j++ {
		t := rand.IntN(j + 1)
		p := s.at(t, self)
		for _, q := range dst[start:] {
			if q == p {
				p = s.at(j, self)
				break
			}
		}
		dst = append(dst, p)
	}
	return dst
}

// at returns the i-th peer of the list with self left out.
func (s *swarm) at(i int, self *peer) *peer {
	if self != nil && i >= self.idx {
		i++
	}
	return s.list[i]
}

// shards spread the swarm map so that announces to different swarms do not
// share a lock.
const shardCount = 64

type shard struct {
	mu     sync.RWMutex
	swarms map[wire.Hash]*swarm
}

type swarmTable struct {
	shards [shardCount]shard
}

func newSwarmTable() *swarmTable {
	t := new(swarmTable)
	for i := range t.shards {
		t.shards[i].swarms = make(map[wire.Hash]*swarm)
	}
	return t
}

func (t *swarmTable) shard(h *wire.Hash) *shard {
	// info_hashes are SHA-1 output (or random); any two bytes spread well.
	return &t.shards[(uint(h[0])<<8|uint(h[19]))%shardCount]
}

// get returns the swarm of h, locked, or nil.
func (t *swarmTable) get(h *wire.Hash) *swarm {
	sh := t.shard(h)
	sh.mu.RLock()
	s := sh.swarms[*h]
	sh.mu.RUnlock()
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return nil
	}
	return s
}

// getOrCreate returns the swarm of h, locked, creating it if needed; created
// reports a new swarm.
func (t *swarmTable) getOrCreate(h *wire.Hash) (s *swarm, created bool) {
	for {
		if s = t.get(h); s != nil {
			return s, false
		}
		sh := t.shard(h)
		sh.mu.Lock()
		s = sh.swarms[*h]
		if s == nil {
			s = &swarm{hash: *h, peers: make(map[wire.Hash]*peer, 1)}
			sh.swarms[*h] = s
			created = true
		}
		sh.mu.Unlock()
		s.mu.Lock()
		if !s.dead {
			return s, created
		}
		s.mu.Unlock()
	}
}

// release unlocks s, deleting it from the table if it is empty, and reports
// whether it was deleted.
func (t *swarmTable) release(s *swarm) (deleted bool) {
	if len(s.list) > 0 {
		s.mu.Unlock()
		return false
	}
	s.dead = true
	s.mu.Unlock()
	sh := t.shard(&s.hash)
	sh.mu.Lock()
	if sh.swarms[s.hash] == s {
		delete(sh.swarms, s.hash)
	}
	sh.mu.Unlock()
	return true
}

// each calls f for every swarm, locked, and deletes the swarms f leaves
// empty; it returns how many it deleted. f must not call back into t.
func (t *swarmTable) each(f func(s *swarm)) (deleted int) {
	var batch []*swarm
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		batch = batch[:0]
		for _, s := range sh.swarms {
			batch = append(batch, s)
		}
		sh.mu.RUnlock()
		for _, s := range batch {
			s.mu.Lock()
			if s.dead {
				s.mu.Unlock()
				continue
			}
			f(s)
			if t.release(s) {
				deleted++
			}
		}
	}
	return deleted
}
