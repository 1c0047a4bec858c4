package wire_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/boxsignal/boxsignal/signal/wire"
)

// allBytes returns hashes that hold every byte value 0–255 between them.
func allBytes() []wire.Hash {
	var hs []wire.Hash
	for start := 0; start < 256; start += len(wire.Hash{}) {
		var h wire.Hash
		for i := range h {
			h[i] = byte(start + i) // the last one wraps to 0x00…
		}
		hs = append(hs, h)
	}
	return hs
}

// decodeMsg reads a server message with encoding/json, as a browser's
// JSON.parse would.
func decodeMsg(t *testing.T, msg []byte) map[string]any {
	t.Helper()
	if !json.Valid(msg) || !utf8.Valid(msg) {
		t.Fatalf("invalid JSON %q", msg)
	}
	var m map[string]any
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("json.Unmarshal(%q) = %v", msg, err)
	}
	return m
}

// binField maps the runes of m[key] back to bytes.
func binField(t *testing.T, msg []byte, m map[string]any, key string) wire.Hash {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Fatalf("%q: %s = %v, want a string", msg, key, m[key])
	}
	h, ok := unbinary(s)
	if !ok {
		t.Fatalf("%q: %s = %q, want 20 code points ≤ U+00FF", msg, key, s)
	}
	return h
}

func TestBinaryRoundTripAllBytes(t *testing.T) {
	other := hash("other")
	sdp := []byte(`{"type":"offer","sdp":"v=0\r\n"}`)
	for _, h := range allBytes() {
		msg := wire.AppendAnnounceResponse(nil, &h, 120, 1, 2)
		if got := binField(t, msg, decodeMsg(t, msg), "info_hash"); got != h {
			t.Errorf("AppendAnnounceResponse info_hash %v: decoded %v from %q", h, got, msg)
		}
		for name, f := range map[string]func([]byte, *wire.Hash, *wire.Hash, *wire.Hash, []byte) []byte{
			"AppendOffer": wire.AppendOffer, "AppendAnswer": wire.AppendAnswer,
		} {
			for _, args := range [][3]wire.Hash{{h, other, other}, {other, h, other}, {other, other, h}} {
				msg := f(nil, &args[0], &args[1], &args[2], sdp)
				m := decodeMsg(t, msg)
				got := [3]wire.Hash{binField(t, msg, m, "info_hash"), binField(t, msg, m, "peer_id"), binField(t, msg, m, "offer_id")}
				if got != args {
					t.Errorf("%s(%v) decoded as %v from %q", name, args, got, msg)
				}
			}
		}
		msg = wire.AppendScrapeResponse(nil, []wire.ScrapeFile{{InfoHash: h}}, 600)
		files := decodeMsg(t, msg)["files"].(map[string]any)
		for k := range files {
			if got, ok := unbinary(k); !ok || got != h {
				t.Errorf("AppendScrapeResponse key %v decoded as %v from %q", h, got, msg)
			}
		}
		msg = wire.AppendFailure(nil, wire.ActionAnnounce, &h, "x")
		if got := binField(t, msg, decodeMsg(t, msg), "info_hash"); got != h {
			t.Errorf("AppendFailure info_hash %v: decoded %v from %q", h, got, msg)
		}

		// And back in: what a JavaScript client sends for h decodes to h.
		in := obj("action", `"announce"`, "info_hash", jsBinary(h), "peer_id", jsBinary(h),
			"to_peer_id", jsBinary(h), "answer", "1", "offer_id", jsBinary(h), "offers", `[{"offer":1,"offer_id":`+jsBinary(h)+`}]`)
		var req wire.Request
		if err := wire.Decode([]byte(in), &req, wire.Limits{}); err != nil {
			t.Fatalf("Decode(%q) = %v", in, err)
		}
		if req.InfoHash != h || req.PeerID != h || req.ToPeerID != h || req.OfferID != h || req.Offers[0].ID != h {
			t.Errorf("Decode(%q) = %v %v %v %v %v, want %v everywhere", in, req.InfoHash, req.PeerID, req.ToPeerID, req.OfferID, req.Offers[0].ID, h)
		}
		// The server's own encoding decodes too (it escapes differently).
		msg = wire.AppendOffer(nil, &h, &h, &h, sdp)
		if err := wire.Decode(msg, &req, wire.Limits{}); err != nil || req.InfoHash != h || req.PeerID != h {
			t.Errorf("Decode(%q) = %v %v, %v, want %v", msg, req.InfoHash, req.PeerID, err, h)
		}
	}
}

// TestBinaryEscaping pins the bytes appendBinary writes: JSON.stringify's
// choices except that controls are always \u00xx.
func TestBinaryEscaping(t *testing.T) {
	h := wire.Hash{0x00, 0x08, 0x0a, 0x1f, 0x20, '"', '\\', '/', '<', 0x7f, 0x80, 0xff, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
	got := string(wire.AppendFailure(nil, wire.ActionAnnounce, &h, "r"))
	want := `{"action":"announce","info_hash":"\u0000\u0008\u000a\u001f \"\\/<` + "\x7f\u0080\u00ff" + `abcdefgh","failure reason":"r"}`
	if got != want {
		t.Errorf("AppendFailure(%v) = %q, want %q", h, got, want)
	}
}

func TestAppendAnnounceResponse(t *testing.T) {
	for _, tc := range []struct{ interval, complete, incomplete int }{{120, 0, 1}, {0, 0, 0}, {120, 1 << 31, 7}, {-1, -2, -3}} {
		msg := wire.AppendAnnounceResponse([]byte("prefix"), &tIH, tc.interval, tc.complete, tc.incomplete)
		if !strings.HasPrefix(string(msg), "prefix") {
			t.Fatalf("AppendAnnounceResponse did not append: %q", msg)
		}
		msg = msg[len("prefix"):]
		m := decodeMsg(t, msg)
		want := map[string]any{"action": "announce", "interval": float64(tc.interval), "info_hash": binary(tIH),
			"complete": float64(tc.complete), "incomplete": float64(tc.incomplete)}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("AppendAnnounceResponse(%+v) = %q, want %v", tc, msg, want)
		}
	}
}

func TestAppendOfferAnswer(t *testing.T) {
	sdps := []string{
		`{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}`,
		`"encrypted$iv"`, // trystero
		`{"sdp":"\u003c\u2028é"}`,
		`[1,{"a":null}]`,
	}
	for _, sdp := range sdps {
		for _, tc := range []struct {
			name, key string
			f         func([]byte, *wire.Hash, *wire.Hash, *wire.Hash, []byte) []byte
		}{{"AppendOffer", "offer", wire.AppendOffer}, {"AppendAnswer", "answer", wire.AppendAnswer}} {
			msg := tc.f(nil, &tIH, &tPeer, &tOID, []byte(sdp))
			m := decodeMsg(t, msg)
			if len(m) != 5 || m["action"] != "announce" || m["info_hash"] != binary(tIH) || m["peer_id"] != binary(tPeer) ||
				m["offer_id"] != binary(tOID) || m[tc.key] == nil {
				t.Errorf("%s(%q) = %q: wrong fields", tc.name, sdp, msg)
			}
			var raw map[string]json.RawMessage
			json.Unmarshal(msg, &raw)
			if string(raw[tc.key]) != sdp {
				t.Errorf("%s(%q) = %q: %s not relayed byte for byte", tc.name, sdp, msg, tc.key)
			}
		}
	}
}

func TestAppendScrapeResponse(t *testing.T) {
	for _, files := range [][]wire.ScrapeFile{
		nil,
		{{InfoHash: tIH, Complete: 1, Incomplete: 2, Downloaded: 3}},
		{{InfoHash: tIH, Complete: 1}, {InfoHash: tTo, Incomplete: 5}, {InfoHash: tOID, Downloaded: 9}},
	} {
		msg := wire.AppendScrapeResponse(nil, files, 600)
		m := decodeMsg(t, msg)
		want := map[string]any{"action": "scrape", "files": map[string]any{},
			"flags": map[string]any{"min_request_interval": float64(600)}}
		for _, f := range files {
			want["files"].(map[string]any)[binary(f.InfoHash)] = map[string]any{
				"complete": float64(f.Complete), "incomplete": float64(f.Incomplete), "downloaded": float64(f.Downloaded)}
		}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("AppendScrapeResponse(%v) = %q, want %v", files, msg, want)
		}
	}
}

func TestAppendFailure(t *testing.T) {
	// Every reason Decode gives, and a few built from client input.
	reasons := []string{"tracker request: x", "invalid action in WS request: " + longAction[:64], "a\x00b\"\\\n\u2028", "\xff\xfe"}
	for _, tc := range decodeTests {
		if tc.err != "" {
			reasons = append(reasons, tc.err)
		}
	}
	for _, reason := range reasons {
		for _, tc := range []struct {
			action wire.Action
			ih     *wire.Hash
			want   string
		}{
			{0, nil, "announce"}, // unknown action: webtorrent needs one to keep the socket
			{wire.ActionAnnounce, &tIH, "announce"},
			{wire.ActionScrape, nil, "scrape"},
			{wire.Action(9), &tIH, "announce"},
		} {
			msg := wire.AppendFailure(nil, tc.action, tc.ih, reason)
			m := decodeMsg(t, msg)
			wantReason := string([]rune(reason)) // each invalid byte becomes U+FFFD
			if m["action"] != tc.want || m["failure reason"] != wantReason {
				t.Errorf("AppendFailure(%v, %q) = %q, want action %q, reason %q", tc.action, reason, msg, tc.want, wantReason)
			}
			if _, has := m["info_hash"]; has != (tc.ih != nil) || (tc.ih != nil && m["info_hash"] != binary(*tc.ih)) {
				t.Errorf("AppendFailure(%v, %v) = %q: info_hash wrong", tc.action, tc.ih, msg)
			}
		}
	}
}

func TestHash(t *testing.T) {
	h := wire.Hash{0: 0xab, 19: 0x01}
	if got, want := h.String(), "ab00000000000000000000000000000000000001"; got != want {
		t.Errorf("Hash.String() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{{h.String(), true}, {strings.ToUpper(h.String()), true}, {h.String()[:38], false}, {h.String() + "00", false},
		{"zz" + h.String()[2:], false}, {"", false}} {
		got, ok := wire.HashFromHex(tc.in)
		if ok != tc.ok || (ok && got != h) {
			t.Errorf("HashFromHex(%q) = %v, %v, want ok %v", tc.in, got, ok, tc.ok)
		}
	}
	if wire.ActionAnnounce.String() != "announce" || wire.ActionScrape.String() != "scrape" || wire.Action(0).String() != "unknown" {
		t.Errorf("Action.String wrong")
	}
}
