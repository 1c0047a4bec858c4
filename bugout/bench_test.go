package bugout

import (
	"log/slog"
	"testing"
	"time"
)

// BenchmarkReceive is the hot path of a busy room: one first-seen signed
// message through decode, verify, the checks, the event and gossip.
func BenchmarkReceive(b *testing.B) {
	now := time.UnixMilli(1700000000000)
	p, err := New(Config{Identifier: "room", Heartbeat: -1, Clock: func() time.Time { return now },
		Logger: slog.New(slog.DiscardHandler), PeerPacketRate: 1e9, PeerPacketBurst: 1 << 30, EventBuffer: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	s := &sender{room: "room"}
	s.id, _ = NewIdentity(nil)
	s.box, _ = newBoxKey(p.cfg.Rand)
	pkts := make([][]byte, b.N)
	for i := range pkts {
		n := []byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 0, 0, 0, 1}
		pkts[i], _ = makePacket(s.id, s.box.ek, "room", now.UnixMilli(), n, map[string]any{"y": "m", "v": `{"hello":"world"}`})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := p.receive(nil, pkts[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
