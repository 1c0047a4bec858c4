package transport

import (
	"encoding/json"
	"testing"
	"time"
)

func TestBinaryRoundTrip(t *testing.T) {
	var h [20]byte
	for i := range h {
		h[i] = byte(i*13 + 0x7b) // control, ASCII, ≥0x80
	}
	b, err := json.Marshal(announce{Action: "announce", InfoHash: binary(h)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeIncoming(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseBinary(m.InfoHash)
	if err != nil || got != h {
		t.Errorf("parseBinary(%q) = %x, %v; want %x", m.InfoHash, got, err, h)
	}
	for _, bad := range []string{"", "short", "\u0100aaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaa"} {
		if _, err := parseBinary(bad); err == nil {
			t.Errorf("parseBinary(%q) = nil error, want one", bad)
		}
	}
}

func TestBackoffGrowsToMax(t *testing.T) {
	lo, hi := time.Second, 8*time.Second
	for n, want := range map[int]time.Duration{1: lo, 2: 2 * lo, 4: hi, 50: hi} {
		got := backoff(lo, hi, n)
		if got < want || got > want+want/2 {
			t.Errorf("backoff(%v, %v, %d) = %v, want [%v, %v]", lo, hi, n, got, want, want+want/2)
		}
	}
}

// FuzzIncoming feeds tracker messages to the decoder: no panic, and a
// 20-byte binary string survives a round trip.
func FuzzIncoming(f *testing.F) {
	f.Add([]byte(`{"action":"announce","interval":120,"info_hash":"\u00b0\u00c2\u0088\u00a5\u0005+\u001b&\u0001E\u00d1\u00ed>*i\u0080(\u008f\u00da\u0097","complete":1,"incomplete":0}`))
	f.Add([]byte(`{"action":"announce","offer":{"type":"offer","sdp":"v=0\r\n"},"offer_id":"aaaaaaaaaaaaaaaaaaaa","peer_id":"-WW0109-taaQ+kUnnQ6z","info_hash":"bbbbbbbbbbbbbbbbbbbb"}`))
	f.Add([]byte(`{"failure reason":"nope"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeIncoming(b)
		if err != nil {
			return
		}
		h, err := parseBinary(m.InfoHash)
		if err != nil {
			return
		}
		if back, err := parseBinary(binary(h)); err != nil || back != h {
			t.Fatalf("round trip of %x = %x, %v", h, back, err)
		}
	})
}
