package dht

import (
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a relayed message is dropped (signald_federation_dropped_total).
const (
	dropQueueFull    = "queue_full"     // a Box's send queue is full
	dropUnreachable  = "unreachable"    // no stream to the Box could be opened
	dropMalformed    = "malformed"      // a message did not decode; its stream was reset
	dropRateLimited  = "rate_limited"   // offers over a Box's, room's or the total limit
	dropUnsolicited  = "unsolicited"    // an answer to an offer not relayed to that Box
	dropExpired      = "expired"        // an answer after PendingTTL
	dropNotFriend    = "not_friend"     // room interest from a Box that is not a friend
	dropPendingFull  = "pending_full"   // too many relayed offers awaiting answers
	dropTooManyRooms = "too_many_rooms" // a Box told of more rooms than kept
)

type metrics struct {
	offers, answers *prometheus.CounterVec // direction, box
	dropped         *prometheus.CounterVec // reason
	refused         prometheus.Counter
	lookups         *prometheus.CounterVec // result
	lookupSeconds   prometheus.Histogram
	provides        *prometheus.CounterVec // result
}

func newMetrics() *metrics {
	return &metrics{
		offers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_federation_offers_total",
			Help: "Browser offers relayed to (out) or from (in) other Boxes, by Box (its friend name, or stranger).",
		}, []string{"direction", "box"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_federation_answers_total",
			Help: "Browser answers relayed to (out) or from (in) other Boxes, by Box.",
		}, []string{"direction", "box"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_federation_dropped_total",
			Help: "Relay messages or offers dropped, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signald_federation_refused_total",
			Help: "Connections and streams refused because the Box is not a friend.",
		}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_dht_lookups_total",
			Help: "DHT room lookups, by result (found, none).",
		}, []string{"result"}),
		lookupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signald_dht_lookup_seconds",
			Help:    "Time from a DHT room lookup's start to the first Box found (or to its end when none is).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		provides: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signald_dht_provides_total",
			Help: "DHT provider records published for rooms with local peers, by result (ok, error).",
		}, []string{"result"}),
	}
}

// register adds m and the gauges read from n to reg, if any.
func (m *metrics) register(reg prometheus.Registerer, n *Node) {
	if reg == nil {
		return
	}
	reg.MustRegister(m.offers, m.answers, m.dropped, m.refused, m.lookups, m.lookupSeconds, m.provides,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signald_federation_friends",
			Help: "Friends in the friends file.",
		}, func() float64 { return float64(len(*n.friends.Load())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signald_federation_friends_connected",
			Help: "Friends with an open connection.",
		}, func() float64 {
			c := 0
			for id := range *n.friends.Load() {
				if n.h.Network().Connectedness(id) == network.Connected {
					c++
				}
			}
			return float64(c)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signald_federation_pending_offers",
			Help: "Offers relayed to other Boxes and awaiting an answer.",
		}, func() float64 {
			n.mu.Lock()
			defer n.mu.Unlock()
			return float64(len(n.pending))
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signald_dht_routing_table_peers",
			Help: "Boxes in the DHT routing table.",
		}, func() float64 {
			if n.kad == nil {
				return 0
			}
			return float64(n.kad.RoutingTable().Size())
		}),
	)
}
