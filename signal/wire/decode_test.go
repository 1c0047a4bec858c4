package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsignal/boxsignal/signal/wire"
)

var (
	tIH, tPeer, tTo, tOID     = hash("ih"), hash("peer"), hash("to"), hash("oid")
	ihJS, peerJS, toJS, oidJS = jsBinary(tIH), jsBinary(tPeer), jsBinary(tTo), jsBinary(tOID)
)

// ann is an announce with a valid info_hash and peer_id, then extra keys.
func ann(extra ...string) string {
	return obj(append([]string{"action", `"announce"`, "info_hash", ihJS, "peer_id", peerJS}, extra...)...)
}

// annWant is what Decode returns for ann(...) before the extra keys.
func annWant(mod func(d *decoded)) decoded {
	d := decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String(), PeerID: tPeer.String(), Numwant: -1}
	if mod != nil {
		mod(&d)
	}
	return d
}

func sdpJS(label string) string { return `{"type":"offer","sdp":"v=0\r\no=- ` + label + `\r\n"}` }

// offerJS is one element of "offers".
func offerJS(label string) string {
	return obj("offer", sdpJS(label), "offer_id", jsBinary(hash("o"+label)))
}

func offersJS(labels ...string) string {
	var s []string
	for _, l := range labels {
		s = append(s, offerJS(l))
	}
	return "[" + strings.Join(s, ",") + "]"
}

// offerWant is how summarize shows offerJS(label).
func offerWant(label string) string { return hash("o"+label).String() + " " + sdpJS(label) }

const answerJS = `{"type":"answer","sdp":"v=0\r\na=setup:active\r\n"}`

type decodeTest struct {
	name string
	in   string
	lim  wire.Limits
	err  string  // the failure reason; "" for success
	want decoded // on failure only Action and InfoHash are compared
}

// longAction is cut at 64 bytes inside a 2-byte rune.
var longAction = "x" + strings.Repeat("é", 40)

var decodeTests = []decodeTest{
	// Announces.
	{name: "minimal announce", in: ann(), want: annWant(nil)},
	{name: "started with offers", in: ann("event", `"started"`, "numwant", "2", "offers", offersJS("a", "b")),
		want: annWant(func(d *decoded) {
			d.Event, d.Numwant, d.Offers = wire.EventStarted, 2, []string{offerWant("a"), offerWant("b")}
		})},
	{name: "offers null", in: ann("offers", "null"), want: annWant(nil)},
	{name: "offers empty", in: ann("offers", "[]"), want: annWant(nil)},
	{name: "offer_id plain ASCII", in: ann("offers", `[{"offer":{"sdp":"x"},"offer_id":"abcdefghijklmnopqrst"}]`),
		want: annWant(func(d *decoded) { d.Offers = []string{"6162636465666768696a6b6c6d6e6f7071727374 " + `{"sdp":"x"}`} })},
	{name: "offer_id with escapes", in: ann("offers", `[{"offer_id":"\u0000\u0001bcdefghijklmnopq\u00ff\"","offer":1}]`),
		want: annWant(func(d *decoded) { d.Offers = []string{"000162636465666768696a6b6c6d6e6f7071ff22 1"} })},
	{name: "offer value of any truthy JSON is relayed raw", in: ann("offers", `[{"offer":"enc$iv","offer_id":`+oidJS+`},{"offer":[0],"offer_id":`+oidJS+`}]`),
		want: annWant(func(d *decoded) { d.Offers = []string{tOID.String() + ` "enc$iv"`, tOID.String() + " [0]"} })},
	{name: "offer keeps inner whitespace", in: ann("offers", `[{"offer" : { "sdp" : "x" } ,"offer_id":`+oidJS+`}]`),
		want: annWant(func(d *decoded) { d.Offers = []string{tOID.String() + ` { "sdp" : "x" }`} })},
	{name: "unknown keys ignored", in: ann("uploaded", "0", "downloaded", "9", "trackerid", `"t"`, "x", `{"a":[1,{"offers":5}]}`),
		want: annWant(nil)},
	{name: "duplicate key keeps the last", in: `{"action":"scrape","action":"announce","info_hash":"x","info_hash":` + ihJS + `,"peer_id":` + peerJS + `}`,
		want: annWant(nil)},
	{name: "repeated offers keeps the last", in: ann("offers", offersJS("a", "b"), "offers", offersJS("c")),
		want: annWant(func(d *decoded) { d.Offers = []string{offerWant("c")} })},
	{name: "escaped key names", in: `{"\u0061ction":"announce","info_h\u0061sh":` + ihJS + `,"peer\u005fid":` + peerJS + `}`,
		want: annWant(nil)},
	{name: "whitespace around everything", in: " \r\n\t{ \"action\" : \"announce\" ,\n\"info_hash\":" + ihJS + " , \"peer_id\" :" + peerJS + "\n}\n ",
		want: annWant(nil)},
	{name: "info_hash all escapes", in: obj("action", `"announce"`, "info_hash", `"`+strings.Repeat(`\u00e9`, 20)+`"`, "peer_id", peerJS),
		want: annWant(func(d *decoded) { d.InfoHash = strings.Repeat("e9", 20) })},

	// Answers.
	{name: "answer", in: ann("to_peer_id", toJS, "answer", answerJS, "offer_id", oidJS),
		want: annWant(func(d *decoded) { d.Answer, d.ToPeerID, d.OfferID = answerJS, tTo.String(), tOID.String() })},
	{name: "answer false is no answer", in: ann("answer", "false"), want: annWant(nil)},
	{name: "answer 0 is no answer", in: ann("answer", "-0.0"), want: annWant(nil)},
	{name: "answer empty string is no answer", in: ann("answer", `""`), want: annWant(nil)},
	{name: "answer null is no answer", in: ann("answer", "null"), want: annWant(nil)},
	{name: `answer "0" is an answer`, in: ann("answer", `"0"`), err: "invalid `to_peer_id` (required with `answer`)",
		want: annWant(nil)},
	{name: "answer [] is an answer", in: ann("answer", `[]`, "to_peer_id", toJS, "offer_id", oidJS),
		want: annWant(func(d *decoded) { d.Answer, d.ToPeerID, d.OfferID = "[]", tTo.String(), tOID.String() })},

	// Scrapes.
	{name: "scrape one", in: obj("action", `"scrape"`, "info_hash", ihJS),
		want: decoded{Action: wire.ActionScrape, InfoHash: tIH.String(), Scrape: []string{tIH.String()}, Numwant: -1}},
	{name: "scrape array", in: obj("action", `"scrape"`, "info_hash", "["+ihJS+","+toJS+"]"),
		want: decoded{Action: wire.ActionScrape, Scrape: []string{tIH.String(), tTo.String()}, Numwant: -1}},
	{name: "scrape array of one", in: obj("action", `"scrape"`, "info_hash", "["+ihJS+"]"),
		want: decoded{Action: wire.ActionScrape, InfoHash: tIH.String(), Scrape: []string{tIH.String()}, Numwant: -1}},
	{name: "scrape empty array", in: obj("action", `"scrape"`, "info_hash", "[]"),
		want: decoded{Action: wire.ActionScrape, Numwant: -1}},
	{name: "scrape all", in: `{"action":"scrape"}`, want: decoded{Action: wire.ActionScrape, AllSwarms: true, Numwant: -1}},
	{name: "scrape null", in: `{"action":"scrape","info_hash":null}`, want: decoded{Action: wire.ActionScrape, AllSwarms: true, Numwant: -1}},

	// Every failure reason of decode.go, and the order they are checked in.
	{name: "empty", in: "", err: "invalid JSON"},
	{name: "truncated", in: `{"action":"announce",`, err: "invalid JSON"},
	{name: "missing colon", in: `{"action" "announce"}`, err: "invalid JSON"},
	{name: "trailing comma", in: `{"action":"scrape",}`, err: "invalid JSON"},
	{name: "trailing object", in: `{"action":"scrape"} {}`, err: "invalid JSON"},
	{name: "trailing garbage", in: `{"action":"scrape"}x`, err: "invalid JSON"},
	{name: "invalid UTF-8", in: "{\"action\":\"scrape\",\"x\":\"\xff\"}", err: "invalid JSON"},
	{name: "lone surrogate", in: `{"action":"scrape","x":"\ud800"}`, err: "invalid JSON"},
	{name: "unterminated string", in: `{"action":"scr`, err: "invalid JSON"},
	{name: "bad offer JSON", in: ann("offers", `[{"offer":}]`), err: "invalid JSON"},
	{name: "unclosed offers", in: `{"offers":[{"offer":1}`, err: "invalid JSON"},
	{name: "bad value after offers", in: `{"offers":[],"x":tru}`, err: "invalid JSON"},
	{name: "bad offer beyond the limit", in: ann("offers", `[1,2,{"x":]`), lim: wire.Limits{MaxOffers: 1}, err: "invalid JSON"},
	{name: "array", in: `[{"action":"announce"}]`, err: "invalid request: not a JSON object"},
	{name: "string", in: `"announce"`, err: "invalid request: not a JSON object"},
	{name: "null", in: `null`, err: "invalid request: not a JSON object"},
	{name: "number", in: ` 42 `, err: "invalid request: not a JSON object"},
	{name: "no action", in: obj("info_hash", ihJS), err: "invalid action in WS request: undefined"},
	{name: "unknown action", in: `{"action":"connect"}`, err: "invalid action in WS request: connect"},
	{name: "action case", in: `{"action":"Announce"}`, err: "invalid action in WS request: Announce"},
	{name: "number action", in: `{"action":1}`, err: "invalid action in WS request: 1"},
	{name: "object action", in: `{"action":{"a": 1}}`, err: `invalid action in WS request: {"a": 1}`},
	{name: "long action cut at 64 bytes", in: obj("action", `"`+longAction+`"`), err: "invalid action in WS request: " + longAction[:64]},
	{name: "no info_hash", in: obj("action", `"announce"`, "peer_id", peerJS), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "short info_hash", in: ann("info_hash", `"abc"`), err: "invalid info_hash", want: decoded{Action: wire.ActionAnnounce}},
	{name: "21-char info_hash", in: ann("info_hash", `"`+strings.Repeat("a", 21)+`"`), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "info_hash over U+00FF", in: ann("info_hash", `"Ā`+strings.Repeat("a", 19)+`"`), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "info_hash escaped U+0100", in: ann("info_hash", `"\u0100`+strings.Repeat("a", 19)+`"`), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "info_hash of 20 UTF-8 bytes", in: ann("info_hash", `"`+strings.Repeat("é", 10)+`"`), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "number info_hash", in: ann("info_hash", "12345678901234567890"), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "array info_hash on announce", in: ann("info_hash", "["+ihJS+"]"), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "info_hash before peer_id", in: obj("action", `"announce"`, "info_hash", `""`), err: "invalid info_hash",
		want: decoded{Action: wire.ActionAnnounce}},
	{name: "no peer_id", in: obj("action", `"announce"`, "info_hash", ihJS), err: "invalid peer_id",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "null peer_id", in: ann("peer_id", "null"), err: "invalid peer_id",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "answer without to_peer_id", in: ann("answer", answerJS, "offer_id", oidJS),
		err: "invalid `to_peer_id` (required with `answer`)", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "answer with short to_peer_id", in: ann("answer", answerJS, "offer_id", oidJS, "to_peer_id", `"x"`),
		err: "invalid `to_peer_id` (required with `answer`)", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "answer without offer_id", in: ann("answer", answerJS, "to_peer_id", toJS),
		err: "invalid offer_id", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "answer too large", in: ann("answer", `"`+strings.Repeat("s", 98)+`"`, "to_peer_id", toJS, "offer_id", oidJS),
		lim: wire.Limits{MaxSDPBytes: 99}, err: "offer or answer too large", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "unknown event", in: ann("event", `"start"`), err: "invalid event", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "event before offers", in: ann("event", `"x"`, "offers", "{}"), err: "invalid event",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offers object", in: ann("offers", "{}"), err: "invalid offers", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offers string", in: ann("offers", `"[]"`), err: "invalid offers", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offers number", in: ann("offers", `5`), err: "invalid offers", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offer not an object", in: ann("offers", `[`+offerJS("a")+`,1]`), err: "invalid offers",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offer null", in: ann("offers", `[null]`), err: "invalid offers", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offer without offer", in: ann("offers", `[{"offer_id":`+oidJS+`}]`), err: "invalid offers",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offer false", in: ann("offers", `[{"offer":false,"offer_id":`+oidJS+`}]`), err: "invalid offers",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offer without offer_id", in: ann("offers", `[{"offer":{"sdp":"x"}}]`), err: "invalid offer_id",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offer_id of 19", in: ann("offers", `[{"offer":{"sdp":"x"},"offer_id":"`+strings.Repeat("o", 19)+`"}]`), err: "invalid offer_id",
		want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "offer too large", in: ann("offers", `[{"offer":"`+strings.Repeat("s", 98)+`","offer_id":`+oidJS+`}]`),
		lim: wire.Limits{MaxSDPBytes: 99}, err: "offer or answer too large", want: decoded{Action: wire.ActionAnnounce, InfoHash: tIH.String()}},
	{name: "scrape number", in: `{"action":"scrape","info_hash":5}`, err: "invalid info_hash", want: decoded{Action: wire.ActionScrape}},
	{name: "scrape short", in: `{"action":"scrape","info_hash":"abc"}`, err: "invalid info_hash", want: decoded{Action: wire.ActionScrape}},
	{name: "scrape array with a number", in: `{"action":"scrape","info_hash":[` + ihJS + `,5]}`, err: "invalid info_hash",
		want: decoded{Action: wire.ActionScrape}},
	{name: "scrape too many", in: `{"action":"scrape","info_hash":[` + ihJS + "," + ihJS + "," + ihJS + `]}`,
		lim: wire.Limits{MaxInfoHashes: 2}, err: "too many info_hashes", want: decoded{Action: wire.ActionScrape}},
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeTests {
		t.Run(tc.name, func(t *testing.T) {
			var req wire.Request
			err := wire.Decode([]byte(tc.in), &req, tc.lim)
			got := summarize(&req)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Decode(%q) = %v, want success", tc.in, err)
				}
				if !got.equal(tc.want) {
					t.Errorf("Decode(%q) = %+v, want %+v", tc.in, got, tc.want)
				}
				return
			}
			var we *wire.Error
			if !errors.As(err, &we) || we.Reason != tc.err {
				t.Fatalf("Decode(%q) = %v, want failure %q", tc.in, err, tc.err)
			}
			if got.Action != tc.want.Action || got.InfoHash != tc.want.InfoHash {
				t.Errorf("Decode(%q) failed with Action %v, InfoHash %q, want %v, %q", tc.in, got.Action, got.InfoHash, tc.want.Action, tc.want.InfoHash)
			}
		})
	}
}

// TestDecodeReuse decodes every table input into one Request, as the server
// does with pooled ones: nothing of a previous request may show through.
func TestDecodeReuse(t *testing.T) {
	var req wire.Request
	for _, tc := range decodeTests {
		if tc.err != "" {
			wire.Decode([]byte(tc.in), &req, tc.lim)
			continue
		}
		if err := wire.Decode([]byte(tc.in), &req, tc.lim); err != nil {
			t.Fatalf("Decode(%q) = %v, want success", tc.in, err)
		}
		if got := summarize(&req); !got.equal(tc.want) {
			t.Errorf("Decode(%q) into a used Request = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestDecodeErrorsAreErrors(t *testing.T) {
	for _, e := range []error{wire.ErrInvalidJSON, wire.ErrNotObject, wire.ErrInvalidInfoHash, wire.ErrInvalidPeerID,
		wire.ErrInvalidToPeerID, wire.ErrInvalidOfferID, wire.ErrInvalidEvent, wire.ErrInvalidOffers, wire.ErrSDPTooLarge,
		wire.ErrTooManyHashes} {
		var we *wire.Error
		if !errors.As(e, &we) || !strings.HasSuffix(e.Error(), we.Reason) || we.Reason == "" {
			t.Errorf("%v: not an *Error with its reason in Error()", e)
		}
	}
}

func TestDecodeEvent(t *testing.T) {
	for _, tc := range []struct {
		raw  string // "" for no event key
		want wire.Event
		err  bool
	}{
		{"", wire.EventUpdate, false},
		{`"update"`, wire.EventUpdate, false},
		{`"empty"`, wire.EventUpdate, false}, // bittorrent-tracker's name for none
		{`""`, wire.EventUpdate, false},      // anacrolix
		{`null`, wire.EventUpdate, false},
		{`"started"`, wire.EventStarted, false},
		{`"stopped"`, wire.EventStopped, false},
		{`"completed"`, wire.EventCompleted, false},
		{`"paused"`, wire.EventPaused, false},
		{`"STARTED"`, 0, true},
		{`"started "`, 0, true},
		{`"stop"`, 0, true},
		{`0`, 0, true},
		{`["started"]`, 0, true},
	} {
		in := ann()
		if tc.raw != "" {
			in = ann("event", tc.raw)
		}
		var req wire.Request
		err := wire.Decode([]byte(in), &req, wire.Limits{})
		switch {
		case tc.err && err != wire.ErrInvalidEvent:
			t.Errorf("Decode(%q) = %v, want %v", in, err, wire.ErrInvalidEvent)
		case !tc.err && (err != nil || req.Event != tc.want):
			t.Errorf("Decode(%q) = event %v, %v, want %v", in, req.Event, err, tc.want)
		}
	}
	for e, name := range []string{"update", "started", "stopped", "completed", "paused"} {
		if got := wire.Event(e).String(); got != name {
			t.Errorf("Event(%d).String() = %q, want %q", e, got, name)
		}
	}
}

// TestDecodeNumbers checks numwant and left the way JavaScript's Number()
// reads them, as decode.go implements it.
func TestDecodeNumbers(t *testing.T) {
	const none = -1
	for _, tc := range []struct {
		raw     string
		numwant int
		seeder  bool // left = raw
	}{
		{"0", 0, true},
		{"5", 5, false},
		{"16", 16, false},
		{"-0", 0, true},
		{"0.0", 0, true},
		{"0e10", 0, true},
		{"2.9", 2, false}, // numwant truncates
		{"-1", none, false},
		{"-0.5", none, false},
		{"1e400", 1 << 20, false}, // +Inf, capped
		{"2000000", 1 << 20, false},
		{"1e-400", 0, true}, // underflows to 0, as in JS
		{`"7"`, 7, false},
		{`" 7\n"`, 7, false}, // Number() trims white space
		{`"0"`, 0, true},
		{`""`, 0, true}, // Number("") is 0
		{`"  "`, 0, true},
		{`"abc"`, none, false}, // NaN: no numwant; left NaN → Infinity, a leecher
		{`"NaN"`, none, false},
		{`"Infinity"`, 1 << 20, false},
		{`"-Infinity"`, none, false},
		{"true", 1, false},
		{"false", 0, true},
		{"{}", none, false},
		// Where Go's ParseFloat and Number() differ, in directions no
		// client takes: JS reads "0x10" as 16 and [] as 0.
		{`"0x10"`, none, false},
		{"[]", none, false},
	} {
		in := ann("numwant", tc.raw, "left", tc.raw)
		var req wire.Request
		if err := wire.Decode([]byte(in), &req, wire.Limits{}); err != nil {
			t.Errorf("Decode(%q) = %v", in, err)
			continue
		}
		if req.Numwant != tc.numwant || req.Seeder != tc.seeder {
			t.Errorf("Decode(%q) = numwant %d seeder %v, want %d %v", in, req.Numwant, req.Seeder, tc.numwant, tc.seeder)
		}
	}
	// Without the keys: no numwant, a leecher (bittorrent-tracker: Number(undefined) is NaN → Infinity).
	var req wire.Request
	if err := wire.Decode([]byte(ann()), &req, wire.Limits{}); err != nil || req.Numwant != none || req.Seeder {
		t.Errorf("Decode(%q) = numwant %d seeder %v %v, want -1 false", ann(), req.Numwant, req.Seeder, err)
	}
}

// TestDecodeMagnetLeftNull: a webtorrent client that has no metadata yet (a
// magnet link) computes left = Math.max(undefined - downloaded, 0) = NaN,
// which JSON.stringify sends as null. tracker-protocol.md §2 and the doc of
// Request.Seeder make that a leecher.
func TestDecodeMagnetLeftNull(t *testing.T) {
	in := readFrame(t, "webtorrent-announce-magnet.json")
	if !strings.Contains(string(in), `"left":null`) {
		t.Fatalf("testdata frame lost its left:null")
	}
	var req wire.Request
	if err := wire.Decode(in, &req, wire.Limits{}); err != nil {
		t.Fatal(err)
	}
	if req.Seeder {
		t.Errorf(`Decode(%.80q…) = Seeder true for "left":null, want false (a magnet leecher; tracker-protocol.md §2)`, in)
	}
}

// TestDecodeEscapedValues: bugout-wire.md §3.1 says any valid JSON escaping
// works for the tracker. Keys are unescaped, but action and event values and
// the keys inside an offer are compared as raw bytes.
func TestDecodeEscapedValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want decoded
	}{
		{`{"action":"\u0061nnounce","info_hash":` + ihJS + `,"peer_id":` + peerJS + `}`, annWant(nil)},
		{ann("event", `"st\u0061rted"`), annWant(func(d *decoded) { d.Event = wire.EventStarted })},
		{ann("offers", `[{"\u006fffer":{"sdp":"x"},"offer\u005fid":`+oidJS+`}]`),
			annWant(func(d *decoded) { d.Offers = []string{tOID.String() + ` {"sdp":"x"}`} })},
	} {
		var req wire.Request
		err := wire.Decode([]byte(tc.in), &req, wire.Limits{})
		if got := summarize(&req); err != nil || !got.equal(tc.want) {
			t.Errorf("Decode(%q) = %+v, %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestDecodeLimits(t *testing.T) {
	labels := func(n int) []string {
		var l []string
		for i := range n {
			l = append(l, fmt.Sprint(i))
		}
		return l
	}
	for _, tc := range []struct {
		name    string
		lim     wire.Limits
		n       int
		kept    int
		dropped int
	}{
		{"default keeps 10", wire.Limits{}, 12, 10, 2},
		{"exactly the limit", wire.Limits{MaxOffers: 5}, 5, 5, 0},
		{"5 of webtorrent's over 3", wire.Limits{MaxOffers: 3}, 5, 3, 2},
		{"1", wire.Limits{MaxOffers: 1}, 5, 1, 4},
	} {
		in := ann("offers", offersJS(labels(tc.n)...))
		var req wire.Request
		if err := wire.Decode([]byte(in), &req, tc.lim); err != nil {
			t.Fatalf("%s: Decode(%q) = %v", tc.name, in, err)
		}
		if len(req.Offers) != tc.kept || req.DroppedOffers != tc.dropped {
			t.Errorf("%s: Decode(%.60q…) = %d offers, %d dropped, want %d, %d", tc.name, in, len(req.Offers), req.DroppedOffers, tc.kept, tc.dropped)
		}
		for i, o := range req.Offers { // the first ones are kept, in order
			if o.ID != hash("o"+fmt.Sprint(i)) {
				t.Errorf("%s: offer %d has id %v, want the %d-th", tc.name, i, o.ID, i)
			}
		}
	}

	// Offers past the limit are skipped unread: an invalid one there is no
	// error, a non-object still is.
	in := ann("offers", "["+offerJS("a")+`,{"offer":false}]`)
	var req wire.Request
	if err := wire.Decode([]byte(in), &req, wire.Limits{MaxOffers: 1}); err != nil || req.DroppedOffers != 1 {
		t.Errorf("Decode(%q) = %v, dropped %d, want success, 1 dropped", in, err, req.DroppedOffers)
	}

	// MaxSDPBytes bounds the raw value, quotes and braces included.
	sdp := func(n int) string { return `"` + strings.Repeat("s", n-2) + `"` }
	for _, tc := range []struct {
		size int
		ok   bool
	}{{100, true}, {101, false}} {
		lim := wire.Limits{MaxSDPBytes: 100}
		in := ann("offers", `[{"offer":`+sdp(tc.size)+`,"offer_id":`+oidJS+`}]`)
		if err := wire.Decode([]byte(in), &req, lim); (err == nil) != tc.ok {
			t.Errorf("Decode(offer of %d bytes) with MaxSDPBytes 100 = %v, want ok %v", tc.size, err, tc.ok)
		}
		in = ann("answer", sdp(tc.size), "to_peer_id", toJS, "offer_id", oidJS)
		if err := wire.Decode([]byte(in), &req, lim); (err == nil) != tc.ok {
			t.Errorf("Decode(answer of %d bytes) with MaxSDPBytes 100 = %v, want ok %v", tc.size, err, tc.ok)
		}
	}
	// The default is 16 KiB.
	in = ann("offers", `[{"offer":`+sdp(16<<10)+`,"offer_id":`+oidJS+`}]`)
	if err := wire.Decode([]byte(in), &req, wire.Limits{}); err != nil {
		t.Errorf("Decode(offer of 16 KiB) = %v, want success", err)
	}
	in = ann("offers", `[{"offer":`+sdp(16<<10+1)+`,"offer_id":`+oidJS+`}]`)
	if err := wire.Decode([]byte(in), &req, wire.Limits{}); err != wire.ErrSDPTooLarge {
		t.Errorf("Decode(offer of 16 KiB + 1) = %v, want %v", err, wire.ErrSDPTooLarge)
	}

	// MaxInfoHashes: 255 by default.
	scrape := func(n int) string {
		h := make([]string, n)
		for i := range h {
			h[i] = ihJS
		}
		return `{"action":"scrape","info_hash":[` + strings.Join(h, ",") + `]}`
	}
	if err := wire.Decode([]byte(scrape(255)), &req, wire.Limits{}); err != nil || len(req.InfoHashes) != 255 {
		t.Errorf("Decode(scrape of 255) = %v, %d hashes, want success", err, len(req.InfoHashes))
	}
	if err := wire.Decode([]byte(scrape(256)), &req, wire.Limits{}); err != wire.ErrTooManyHashes {
		t.Errorf("Decode(scrape of 256) = %v, want %v", err, wire.ErrTooManyHashes)
	}
	if err := wire.Decode([]byte(scrape(3)), &req, wire.Limits{MaxInfoHashes: 3}); err != nil {
		t.Errorf("Decode(scrape of 3) with MaxInfoHashes 3 = %v, want success", err)
	}
}

// TestDecodeClientFrames reads the frames in testdata, made the way each
// client sends them (testdata/frames.js), and checks Decode against
// encoding/json reading the same bytes.
func TestDecodeClientFrames(t *testing.T) {
	want := map[string]struct {
		action  wire.Action
		event   wire.Event
		numwant int
		seeder  bool
		offers  int
		answer  bool
		scrape  int
	}{
		"webtorrent-announce-started.json": {wire.ActionAnnounce, wire.EventStarted, 5, true, 5, false, 0},
		"webtorrent-announce-update.json":  {wire.ActionAnnounce, wire.EventUpdate, 5, true, 5, false, 0},
		"webtorrent-announce-magnet.json":  {wire.ActionAnnounce, wire.EventStarted, 5, false, 5, false, 0},
		"webtorrent-announce-stopped.json": {wire.ActionAnnounce, wire.EventStopped, -1, true, 0, false, 0},
		"webtorrent-answer.json":           {wire.ActionAnnounce, wire.EventUpdate, -1, false, 0, true, 0},
		"webtorrent-scrape.json":           {wire.ActionScrape, wire.EventUpdate, -1, false, 0, false, 2},
		"trystero-announce.json":           {wire.ActionAnnounce, wire.EventUpdate, 3, false, 3, false, 0},
		"trystero-announce-passive.json":   {wire.ActionAnnounce, wire.EventUpdate, 0, true, 0, false, 0},
		"anacrolix-announce.json":          {wire.ActionAnnounce, wire.EventUpdate, 1, false, 1, false, 0},
	}
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) != len(want) {
		t.Errorf("testdata has %d frames, the test knows %d", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: no expectation", name)
			continue
		}
		in := readFrame(t, name)
		var req wire.Request
		if err := wire.Decode(in, &req, wire.Limits{}); err != nil {
			t.Errorf("Decode(%s) = %v", name, err)
			continue
		}
		if req.Action != w.action || req.Event != w.event || req.Numwant != w.numwant || req.Seeder != w.seeder ||
			len(req.Offers) != w.offers || req.IsAnswer() != w.answer || len(req.InfoHashes) != w.scrape || req.DroppedOffers != 0 {
			t.Errorf("Decode(%s) = %s, event %v, numwant %d, seeder %v, %d offers, answer %v, %d scraped; want %+v",
				name, req.Action, req.Event, req.Numwant, req.Seeder, len(req.Offers), req.IsAnswer(), len(req.InfoHashes), w)
		}
		checkAgainstEncodingJSON(t, in, &req)
	}
}

// checkAgainstEncodingJSON compares what Decode returned for in with what
// encoding/json reads from it: the binary strings, mapped back to bytes, and
// the raw offer and answer values.
func checkAgainstEncodingJSON(t testing.TB, in []byte, req *wire.Request) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(in, &m); err != nil {
		t.Fatalf("encoding/json cannot read %q, which Decode accepted: %v", in, err)
	}
	bin := func(key string, got *wire.Hash) {
		t.Helper()
		var s string
		if err := json.Unmarshal(m[key], &s); err != nil {
			t.Errorf("Decode(%q): %s %s is not a string: %v", in, key, m[key], err)
			return
		}
		h, ok := unbinary(s)
		if !ok || h != *got {
			t.Errorf("Decode(%q) = %s %v, want %v (encoding/json: %q)", in, key, *got, h, s)
		}
	}
	if req.Action == wire.ActionScrape {
		if req.AllSwarms {
			return
		}
		var list []string
		if json.Unmarshal(m["info_hash"], &list) != nil {
			var s string
			json.Unmarshal(m["info_hash"], &s)
			list = []string{s}
		}
		if len(list) != len(req.InfoHashes) {
			t.Fatalf("Decode(%q) = %d info_hashes, want %d", in, len(req.InfoHashes), len(list))
		}
		for i, s := range list {
			if h, _ := unbinary(s); h != req.InfoHashes[i] {
				t.Errorf("Decode(%q) = info_hash %d %v, want %v", in, i, req.InfoHashes[i], h)
			}
		}
		return
	}
	bin("info_hash", &req.InfoHash)
	bin("peer_id", &req.PeerID)
	if req.IsAnswer() {
		bin("to_peer_id", &req.ToPeerID)
		bin("offer_id", &req.OfferID)
		if string(m["answer"]) != string(req.Answer) {
			t.Errorf("Decode(%q) = answer %q, want %q", in, req.Answer, m["answer"])
		}
	}
	var offers []struct {
		Offer   json.RawMessage `json:"offer"`
		OfferID string          `json:"offer_id"`
	}
	json.Unmarshal(m["offers"], &offers)
	if len(req.Offers) > len(offers) {
		t.Fatalf("Decode(%q) = %d offers, encoding/json sees %d", in, len(req.Offers), len(offers))
	}
	for i, o := range req.Offers {
		if string(o.SDP) != string(offers[i].Offer) {
			t.Errorf("Decode(%q) = offer %d %q, want %q", in, i, o.SDP, offers[i].Offer)
		}
		if h, _ := unbinary(offers[i].OfferID); h != o.ID {
			t.Errorf("Decode(%q) = offer_id %d %v, want %v", in, i, o.ID, h)
		}
	}
}

// TestDecodeRealisticAnnounce spells out the webtorrent announce that the
// benchmark decodes: keys in webtorrent's order, 5 offers of ~700 bytes.
func TestDecodeRealisticAnnounce(t *testing.T) {
	in := readFrame(t, "webtorrent-announce-started.json")
	if !strings.HasPrefix(string(in), `{"numwant":5,"uploaded":0,"downloaded":9,"left":0,"event":"started","action":"announce","info_hash":"`) {
		t.Fatalf("frame starts %.120q", in)
	}
	var req wire.Request
	if err := wire.Decode(in, &req, wire.Limits{}); err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, "b0c288a505225c7f001f80ff3c2f0a0d0941da97"); req.InfoHash != want || !req.HasInfoHash {
		t.Errorf("info_hash %v, want %v", req.InfoHash, want)
	}
	if string(req.PeerID[:]) != "-WW0109-taaQ+kUnnQ6z" {
		t.Errorf("peer_id %q", req.PeerID[:])
	}
	for i, o := range req.Offers {
		for j := range o.ID { // frames.js: seq(i+1)
			if want := byte((i+1)*53 + j*29); o.ID[j] != want {
				t.Fatalf("offer %d id %v, byte %d want %#x", i, o.ID, j, want)
			}
		}
		var sdp struct{ Type, SDP string }
		if err := json.Unmarshal(o.SDP, &sdp); err != nil || sdp.Type != "offer" || !strings.HasPrefix(sdp.SDP, "v=0\r\no=- ") ||
			!strings.HasSuffix(sdp.SDP, "a=max-message-size:262144\r\n") || len(sdp.SDP) < 600 {
			t.Errorf("offer %d = %.80q…, %v", i, o.SDP, err)
		}
	}
}

// TestDecodeRoundTrip re-encodes every accepted table input the way a client
// would and decodes it again.
func TestDecodeRoundTrip(t *testing.T) {
	for _, tc := range decodeTests {
		if tc.err == "" {
			checkRoundTrip(t, []byte(tc.in), tc.lim)
		}
	}
}

func checkRoundTrip(t testing.TB, in []byte, lim wire.Limits) {
	t.Helper()
	var req, again wire.Request
	if err := wire.Decode(in, &req, lim); err != nil {
		return
	}
	out := encodeRequest(&req)
	if err := wire.Decode(out, &again, lim); err != nil {
		t.Fatalf("Decode(%q) = %v; it re-encodes Decode(%q)", out, err, in)
	}
	want := summarize(&req)
	want.Dropped = 0
	if got := summarize(&again); !got.equal(want) {
		t.Fatalf("Decode(%q) = %+v, want %+v as from Decode(%q)", out, got, want, in)
	}
}
