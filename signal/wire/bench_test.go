package wire_test

import (
	"testing"

	"github.com/boxsignal/boxsignal/signal/wire"
)

// BenchmarkDecodeAnnounce decodes webtorrent's announce: 5 offers of about
// 700 bytes, keys in webtorrent's order, the info_hash full of escapes.
func BenchmarkDecodeAnnounce(b *testing.B) {
	in := readFrame(b, "webtorrent-announce-started.json")
	var req wire.Request
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if err := wire.Decode(in, &req, wire.Limits{}); err != nil || len(req.Offers) != 5 {
			b.Fatalf("Decode = %v, %d offers", err, len(req.Offers))
		}
	}
}

// BenchmarkAppendOffer builds one relayed offer from the decoded announce,
// as the server does once per offer into a pooled buffer.
func BenchmarkAppendOffer(b *testing.B) {
	var req wire.Request
	if err := wire.Decode(readFrame(b, "webtorrent-announce-started.json"), &req, wire.Limits{}); err != nil {
		b.Fatal(err)
	}
	o := req.Offers[0]
	buf := wire.AppendOffer(nil, &req.InfoHash, &req.PeerID, &o.ID, o.SDP)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = wire.AppendOffer(buf[:0], &req.InfoHash, &req.PeerID, &o.ID, o.SDP)
	}
}
