package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/boxsignal/boxsignal/signal/wire"
)

// FuzzDecode feeds Decode anything. It must not panic; what it accepts must
// be within its limits, hold valid JSON where it keeps raw JSON, agree with
// encoding/json, and survive decode → encode → decode, both as a client
// would re-send it and as the server relays its offers and answer.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeTests {
		f.Add([]byte(tc.in))
	}
	frames, _ := filepath.Glob("testdata/*.json")
	for _, name := range frames {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	limits := []wire.Limits{{}, {MaxOffers: 2, MaxSDPBytes: 700, MaxInfoHashes: 3}}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		for _, lim := range limits {
			var req wire.Request
			err := wire.Decode(data, &req, lim)
			if !bytes.Equal(data, orig) {
				t.Fatalf("Decode(%q) changed its input", orig)
			}
			if err != nil {
				checkRefused(t, data, &req, err)
				continue
			}
			checkAccepted(t, data, &req, lim)
		}
	})
}

func checkRefused(t *testing.T, data []byte, req *wire.Request, err error) {
	var we *wire.Error
	if !errors.As(err, &we) || we.Reason == "" {
		t.Fatalf("Decode(%q) = %#v, want an *Error with a reason", data, err)
	}
	var ih *wire.Hash
	if req.HasInfoHash {
		ih = &req.InfoHash
	}
	msg := wire.AppendFailure(nil, req.Action, ih, we.Reason)
	if !json.Valid(msg) || !utf8.Valid(msg) {
		t.Fatalf("Decode(%q) = %v: failure reply %q is not valid JSON", data, err, msg)
	}
}

func checkAccepted(t *testing.T, data []byte, req *wire.Request, lim wire.Limits) {
	maxOffers, maxSDP, maxHashes := lim.MaxOffers, lim.MaxSDPBytes, lim.MaxInfoHashes
	if maxOffers == 0 {
		maxOffers, maxSDP, maxHashes = 10, 16<<10, 255
	}
	if !json.Valid(data) {
		t.Fatalf("Decode(%q) accepted what encoding/json calls invalid", data)
	}
	switch req.Action {
	case wire.ActionAnnounce:
		if !req.HasInfoHash {
			t.Fatalf("Decode(%q) = announce without info_hash", data)
		}
	case wire.ActionScrape:
		if len(req.InfoHashes) > maxHashes || (req.AllSwarms && len(req.InfoHashes) > 0) {
			t.Fatalf("Decode(%q) = %d info_hashes (all %v), limit %d", data, len(req.InfoHashes), req.AllSwarms, maxHashes)
		}
	default:
		t.Fatalf("Decode(%q) = action %v", data, req.Action)
	}
	if len(req.Offers) > maxOffers || req.DroppedOffers < 0 || req.Numwant < -1 || req.Numwant > 1<<20 {
		t.Fatalf("Decode(%q) = %d offers, %d dropped, numwant %d; limit %d", data, len(req.Offers), req.DroppedOffers, req.Numwant, maxOffers)
	}
	for i, o := range req.Offers {
		if !json.Valid(o.SDP) || len(o.SDP) > maxSDP {
			t.Fatalf("Decode(%q) = offer %d %q: invalid JSON or over %d bytes", data, i, o.SDP, maxSDP)
		}
		if req.Action == wire.ActionAnnounce {
			checkRelay(t, data, "offer", wire.AppendOffer(nil, &req.InfoHash, &req.PeerID, &o.ID, o.SDP), req, &o.ID, o.SDP)
		}
	}
	if req.IsAnswer() {
		if !json.Valid(req.Answer) || len(req.Answer) > maxSDP {
			t.Fatalf("Decode(%q) = answer %q: invalid JSON or over %d bytes", data, req.Answer, maxSDP)
		}
		checkRelay(t, data, "answer", wire.AppendAnswer(nil, &req.InfoHash, &req.PeerID, &req.OfferID, req.Answer), req, &req.OfferID, req.Answer)
	}
	if req.Action == wire.ActionAnnounce {
		msg := wire.AppendAnnounceResponse(nil, &req.InfoHash, 120, 1, 2)
		if !json.Valid(msg) {
			t.Fatalf("Decode(%q): reply %q is not valid JSON", data, msg)
		}
	}
	checkAgainstEncodingJSON(t, data, req)
	checkRoundTrip(t, data, lim)
}

// checkRelay reads a relayed offer or answer the way the browser does and
// by Decode: the bytes that went in come out.
func checkRelay(t *testing.T, data []byte, key string, msg []byte, req *wire.Request, id *wire.Hash, sdp []byte) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil || !utf8.Valid(msg) {
		t.Fatalf("Decode(%q): relayed %s %q is not valid JSON: %v", data, key, msg, err)
	}
	if !bytes.Equal(m[key], sdp) {
		t.Fatalf("Decode(%q): relayed %s %q carries %q, want %q", data, key, msg, m[key], sdp)
	}
	for k, want := range map[string]*wire.Hash{"info_hash": &req.InfoHash, "peer_id": &req.PeerID, "offer_id": id} {
		var s string
		json.Unmarshal(m[k], &s)
		if h, ok := unbinary(s); !ok || h != *want {
			t.Fatalf("Decode(%q): relayed %s %q has %s %v, want %v", data, key, msg, k, h, *want)
		}
	}
	// A relayed answer has no to_peer_id, so as a client message it is
	// refused, but only after its info_hash and peer_id were read.
	var again wire.Request
	err := wire.Decode(msg, &again, wire.Limits{})
	if key == "answer" && err == wire.ErrInvalidToPeerID {
		err = nil
	}
	if err != nil || again.InfoHash != req.InfoHash || again.PeerID != req.PeerID {
		t.Fatalf("Decode(%q) = %v, %v, %v; want the info_hash and peer_id it was made from", msg, again.InfoHash, again.PeerID, err)
	}
}
