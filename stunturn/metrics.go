package stunturn

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Quota kinds: the "quota" label of signald_turn_quota_rejections_total.
const (
	quotaUser        = "user_allocations"  // Config.UserQuota
	quotaTotal       = "total_allocations" // Config.TotalQuota
	quotaPermissions = "permissions"       // Config.MaxPermissions, permissions
	quotaChannels    = "channels"          // Config.MaxPermissions, channel bindings
)

// Drop reasons: the "reason" label of signald_turn_dropped_packets_total.
const (
	dropBandwidth = "bandwidth"   // over BandwidthPerAllocation or BandwidthTotal
	dropUnauth    = "unauth_rate" // over UnauthRatePerIP
)

type metrics struct {
	allocations      prometheus.Gauge
	allocationsTotal prometheus.Counter
	bytes            *prometheus.CounterVec // direction
	packets          *prometheus.CounterVec // direction
	authFailures     *prometheus.CounterVec // reason
	deniedPeers      *prometheus.CounterVec // reason
	quotaRejections  *prometheus.CounterVec // quota
	dropped          *prometheus.CounterVec // reason

	// Hot-path children, resolved once.
	bytesToPeer, bytesToClient     prometheus.Counter
	packetsToPeer, packetsToClient prometheus.Counter
	dropBandwidth, dropUnauth      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "signald", "turn"
	m := &metrics{
		allocations: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "allocations", Help: "TURN allocations currently open."}),
		allocationsTotal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "allocations_total", Help: "TURN allocations created."}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "relayed_bytes_total", Help: "Payload bytes relayed, by direction (to_peer, to_client)."},
			[]string{"direction"}),
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "relayed_packets_total", Help: "Datagrams (UDP relays) or writes (TCP relays) relayed, by direction."},
			[]string{"direction"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "auth_failures_total", Help: "Authenticated requests refused, by reason."},
			[]string{"reason"}),
		deniedPeers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "denied_peers_total", Help: "Peer addresses refused by the peer filter, by reason."},
			[]string{"reason"}),
		quotaRejections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "quota_rejections_total", Help: "Requests refused because a quota was reached, by quota."},
			[]string{"quota"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "dropped_packets_total", Help: "Packets dropped by a rate limit, by reason."},
			[]string{"reason"}),
	}
	m.bytesToPeer = m.bytes.WithLabelValues("to_peer")
	m.bytesToClient = m.bytes.WithLabelValues("to_client")
	m.packetsToPeer = m.packets.WithLabelValues("to_peer")
	m.packetsToClient = m.packets.WithLabelValues("to_client")
	m.dropBandwidth = m.dropped.WithLabelValues(dropBandwidth)
	m.dropUnauth = m.dropped.WithLabelValues(dropUnauth)
	for _, r := range authReasons {
		m.authFailures.WithLabelValues(r)
	}
	for _, r := range denyReasons {
		m.deniedPeers.WithLabelValues(string(r))
	}
	for _, q := range []string{quotaUser, quotaTotal, quotaPermissions, quotaChannels} {
		m.quotaRejections.WithLabelValues(q)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register turn metrics: %w (one Server per Registerer)", err)
			}
			return nil, fmt.Errorf("register turn metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.allocations, m.allocationsTotal, m.bytes, m.packets,
		m.authFailures, m.deniedPeers, m.quotaRejections, m.dropped}
}

// unregister removes the collectors again, so that a daemon can replace a
// Server (reload) on the same registry.
func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}
