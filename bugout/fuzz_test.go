package bugout

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"
	"time"
)

// FuzzPacket runs the whole receive path (decode, decrypt, verify, checks,
// peer table, events, RPC) on arbitrary payloads: it must never panic.
// Seeds are the nine real packets, which this peer (server S's box key and
// room) opens, plus broken variants.
func FuzzPacket(f *testing.F) {
	v := loadVectors(f)
	for _, p := range v.Packets {
		b, _ := hex.DecodeString(p.OuterHex)
		f.Add(b)
		f.Add(b[:len(b)/2])
		flipped := bytes.Clone(b)
		flipped[len(flipped)/3] ^= 0x20
		f.Add(flipped)
	}
	f.Add([]byte("d1:e0:2:ek0:1:n0:e"))
	f.Add([]byte("d1:p0:1:s0:e"))
	id, _ := IdentityFromSeed(bytes.Repeat([]byte{0x23}, 32))
	p, err := New(Config{
		Identity:  id,
		Rand:      io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{0x42}, 32)), rand.Reader),
		Clock:     func() time.Time { return time.UnixMilli(1700000002500) },
		Heartbeat: -1,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	go func() {
		for range p.Events() {
		}
	}()
	f.Fuzz(func(t *testing.T, data []byte) {
		p.handlePayload(nil, data)
	})
}
