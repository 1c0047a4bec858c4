package main

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sample is one point of the dashboard's figures. It holds aggregates only:
// no info_hash, peer_id or address ever reaches the public dashboard.
type sample struct {
	T               int64   `json:"t"` // Unix milliseconds
	Connections     float64 `json:"connections"`
	Swarms          float64 `json:"swarms"`
	Peers           float64 `json:"peers"`
	OffersPerSec    float64 `json:"offersPerSec"`
	AnswersPerSec   float64 `json:"answersPerSec"`
	AnnouncesPerSec float64 `json:"announcesPerSec"`
	TURNAllocations float64 `json:"turnAllocations"`
	TURNBytesPerSec float64 `json:"turnBytesPerSec"` // relayed payload, both directions
	RSSBytes        float64 `json:"rssBytes"`
	// Federation: -1 while it is not running.
	Friends   float64 `json:"friends"`
	FriendsUp float64 `json:"friendsUp"`
	DHTPeers  float64 `json:"dhtPeers"`
}

// The series a sample is read from: the tracker's and TURN server's own
// metrics, so the dashboard and /metrics cannot disagree.
const (
	mConnections = "signald_tracker_connections"
	mSwarms      = "signald_tracker_swarms"
	mPeers       = "signald_tracker_peers"
	mOffers      = "signald_tracker_offers_relayed_total"
	mAnswers     = "signald_tracker_answers_relayed_total"
	mAnnounces   = "signald_tracker_announces_total"
	mAllocations = "signald_turn_allocations"
	mTURNBytes   = "signald_turn_relayed_bytes_total"
	mRSS         = "process_resident_memory_bytes"
	mFriends     = "signald_federation_friends"
	mFriendsUp   = "signald_federation_friends_connected"
	mDHTPeers    = "signald_dht_routing_table_peers"
)

// sampler reads the registries every interval, keeps the last historyLen
// samples and fans each new one out to the dashboard's live feeds.
type sampler struct {
	gather   prometheus.Gatherer
	interval time.Duration

	mu      sync.Mutex
	history []sample // oldest first, at most historyLen
	subs    map[chan sample]struct{}
	prev    map[string]float64 // counters at the previous sample
	prevT   time.Time

	stop chan struct{}
	done chan struct{}
}

const (
	historyLen  = 300 // five minutes at one sample a second
	maxFeedSubs = 64  // dashboards open at once; more get 503
)

func newSampler(g prometheus.Gatherer, interval time.Duration) *sampler {
	return &sampler{gather: g, interval: interval, subs: map[chan sample]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// run samples until close; the caller starts it once.
func (s *sampler) run() {
	defer close(s.done)
	s.take(time.Now())
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.take(now)
		case <-s.stop:
			return
		}
	}
}

// close stops run and ends every live feed. Idempotent.
func (s *sampler) close() {
	s.mu.Lock()
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	for ch := range s.subs {
		close(ch)
		delete(s.subs, ch)
	}
	s.mu.Unlock()
	<-s.done
}

func (s *sampler) take(now time.Time) {
	vals := map[string]float64{}
	mfs, _ := s.gather.Gather() // a failing collector leaves its series at 0
	for _, mf := range mfs {
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += value(mf.GetType(), m)
		}
		vals[mf.GetName()] = sum
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rate := func(name string) float64 {
		if s.prev == nil {
			return 0
		}
		dt := now.Sub(s.prevT).Seconds()
		if d := vals[name] - s.prev[name]; dt > 0 && d > 0 {
			return d / dt
		}
		return 0
	}
	sm := sample{
		T:               now.UnixMilli(),
		Connections:     vals[mConnections],
		Swarms:          vals[mSwarms],
		Peers:           vals[mPeers],
		OffersPerSec:    rate(mOffers),
		AnswersPerSec:   rate(mAnswers),
		AnnouncesPerSec: rate(mAnnounces),
		TURNAllocations: vals[mAllocations],
		TURNBytesPerSec: rate(mTURNBytes),
		RSSBytes:        vals[mRSS],
		Friends:         -1,
		FriendsUp:       -1,
		DHTPeers:        -1,
	}
	if f, ok := vals[mFriends]; ok {
		sm.Friends, sm.FriendsUp, sm.DHTPeers = f, vals[mFriendsUp], vals[mDHTPeers]
	}
	s.prev, s.prevT = vals, now
	if len(s.history) == historyLen {
		copy(s.history, s.history[1:])
		s.history = s.history[:historyLen-1]
	}
	s.history = append(s.history, sm)
	for ch := range s.subs {
		select {
		case ch <- sm:
		default: // a slow dashboard misses a point; the next one catches up
		}
	}
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// subscribe returns the history so far and a channel of the samples that
// follow, or ok false when maxFeedSubs feeds are open or the sampler is
// closed. The channel is closed by unsubscribe or close.
func (s *sampler) subscribe() (history []sample, ch chan sample, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stop:
		return nil, nil, false
	default:
	}
	if len(s.subs) >= maxFeedSubs {
		return nil, nil, false
	}
	ch = make(chan sample, 4)
	s.subs[ch] = struct{}{}
	return append([]sample{}, s.history...), ch, true
}

func (s *sampler) unsubscribe(ch chan sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[ch]; ok {
		delete(s.subs, ch)
		close(ch)
	}
}

// latest returns the newest sample, if any was taken.
func (s *sampler) latest() (sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.history) == 0 {
		return sample{}, false
	}
	return s.history[len(s.history)-1], true
}
