package signal

import (
	"sync/atomic"

	"github.com/boxsignal/boxsignal/signal/wire"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a request is refused or a message dropped. Metric labels come only
// from these fixed sets.
const (
	reasonInvalidJSON    = "invalid_json"
	reasonInvalidRequest = "invalid_request"
	reasonRateLimited    = "rate_limited"
	reasonTooManySwarms  = "too_many_swarms"
	reasonPeerIDInUse    = "peer_id_in_use"
	reasonBinaryFrame    = "binary_frame"

	dropUnexpectedAnswer = "unexpected_answer" // no such offer relayed to the answerer, or expired
	dropOffererGone      = "offerer_gone"
	dropUnknownAnswerer  = "unknown_answerer" // answerer not in the swarm, or another connection's peer_id
	dropMemberBusy       = "member_busy"      // the member refused the message (closed, or a full queue)
	dropNoPeers          = "no_peers"         // more offers than other peers in the swarm

	closeIdle       = "idle"        // no announce for IdleTimeout
	closeSlowReader = "slow_reader" // more than WriteBufferBytes queued beyond the kernel's buffer
)

type metrics struct {
	// Gauges are kept as atomics and read by GaugeFuncs.
	conns, peers, swarms atomic.Int64

	connsTotal prometheus.Counter
	announces  *prometheus.CounterVec // by event
	// announceByEvent holds announces' children, resolved once: the hot
	// path does no label lookup.
	announceByEvent [5]prometheus.Counter
	scrapes         prometheus.Counter
	offers          prometheus.Counter
	answers         prometheus.Counter
	dropped         *prometheus.CounterVec // offers and answers not delivered, by reason
	failures        *prometheus.CounterVec // requests refused, by reason
	closes          *prometheus.CounterVec // connections closed by the server, by reason
	bytesIn         prometheus.Counter
	bytesOut        prometheus.Counter
	refusedUpgrad   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{}
	const ns, sub = "signald", "tracker"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	vec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, []string{label})
	}
	m.connsTotal = counter("connections_total", "WebSocket connections accepted.")
	m.announces = vec("announces_total", "Announces handled (answers excluded), by event.", "event")
	for e := range m.announceByEvent {
		m.announceByEvent[e] = m.announces.WithLabelValues(wire.Event(e).String())
	}
	m.scrapes = counter("scrapes_total", "Scrapes handled.")
	m.offers = counter("offers_relayed_total", "Offers delivered to another peer.")
	m.answers = counter("answers_relayed_total", "Answers delivered to the offerer.")
	m.dropped = vec("relay_dropped_total", "Offers and answers not delivered, by reason.", "reason")
	m.failures = vec("failures_total", "Requests answered with a failure reason, by reason.", "reason")
	m.closes = vec("closes_total", "Connections closed by the tracker, by reason.", "reason")
	m.bytesIn = counter("frame_bytes_received_total", "Bytes of WebSocket messages received.")
	m.bytesOut = counter("frame_bytes_sent_total", "Bytes of WebSocket messages sent.")
	m.refusedUpgrad = counter("upgrades_refused_total", "Upgrades refused for the per-address connection limit.")
	if reg == nil {
		return m
	}
	gauge := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	reg.MustRegister(
		gauge("connections", "Open WebSocket connections.", &m.conns),
		gauge("peers", "Peers in all swarms.", &m.peers),
		gauge("swarms", "Swarms with at least one peer.", &m.swarms),
		m.connsTotal, m.announces, m.scrapes, m.offers, m.answers, m.dropped, m.failures, m.closes,
		m.bytesIn, m.bytesOut, m.refusedUpgrad,
	)
	return m
}
