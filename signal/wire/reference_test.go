package wire

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

type refDecoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

var refDecoders = sync.Pool{New: func() any { return new(refDecoder) }}

var refDecodeOptions = jsontext.AllowDuplicateNames(true) // JSON.parse keeps the last; so do we

// refDecode is Decode as it was with jsontext: the reference the scanner
// must agree with, input for input.
func refDecode(data []byte, req *Request, lim Limits) error {
	req.Reset()
	lim = lim.withDefaults()
	d := refDecoders.Get().(*refDecoder)
	defer func() {
		d.buf = bytes.Buffer{}
		d.dec.Reset(&d.buf) // drop the reference to data
		refDecoders.Put(d)
	}()
	d.buf = *bytes.NewBuffer(data)
	d.dec.Reset(&d.buf, refDecodeOptions)
	return d.request(req, lim)
}

func (d *refDecoder) request(req *Request, lim Limits) error {
	tok, err := d.dec.ReadToken()
	if err != nil {
		return ErrInvalidJSON
	}
	if tok.Kind() != '{' {
		return ErrNotObject
	}
	var f fields
	for d.dec.PeekKind() != '}' {
		var tmp [32]byte
		name, err := d.name(tmp[:0])
		if err != nil {
			return err
		}
		if string(name) == "offers" {
			if err := d.offers(req, lim, &f); err != nil {
				return err
			}
			continue
		}
		v, err := d.dec.ReadValue()
		if err != nil {
			return ErrInvalidJSON
		}
		switch string(name) {
		case "action":
			f.action = v
		case "info_hash":
			f.infoHash = v
		case "peer_id":
			f.peerID = v
		case "to_peer_id":
			f.toPeerID = v
		case "offer_id":
			f.offerID = v
		case "event":
			f.event = v
		case "numwant":
			f.numwant = v
		case "left":
			f.left, f.hasLeft = v, true
		case "answer":
			f.answer = v
		}
	}
	if _, err := d.dec.ReadToken(); err != nil { // '}'
		return ErrInvalidJSON
	}
	if _, err := d.dec.ReadToken(); err != io.EOF {
		return ErrInvalidJSON // trailing data
	}
	return f.interpret(req, lim)
}

// name reads an object member name, unescaped into buf when it has escapes.
func (d *refDecoder) name(buf []byte) ([]byte, error) {
	name, err := d.dec.ReadValue()
	if err != nil {
		return nil, ErrInvalidJSON
	}
	if bytes.IndexByte(name, '\\') < 0 {
		return name[1 : len(name)-1], nil
	}
	if name, err = unquote(buf, name); err != nil {
		return nil, ErrInvalidJSON
	}
	return name, nil
}

// offers reads the "offers" array. Elements are objects with "offer" (any
// JSON, relayed raw) and "offer_id" (binary string); a null array is none.
func (d *refDecoder) offers(req *Request, lim Limits, f *fields) error {
	switch d.dec.PeekKind() {
	case 'n':
		_, err := d.dec.ReadToken()
		return refJSONErr(err)
	case '[':
	default:
		f.offersErr = ErrInvalidOffers
		return refJSONErr(d.dec.SkipValue())
	}
	req.Offers = req.Offers[:0] // a repeated key keeps the last, as JSON.parse does
	req.DroppedOffers = 0
	if _, err := d.dec.ReadToken(); err != nil {
		return ErrInvalidJSON
	}
	for d.dec.PeekKind() != ']' {
		if d.dec.PeekKind() != '{' || len(req.Offers) >= lim.MaxOffers {
			if d.dec.PeekKind() != '{' {
				f.offersErr = ErrInvalidOffers
			} else {
				req.DroppedOffers++
			}
			if err := d.dec.SkipValue(); err != nil {
				return ErrInvalidJSON
			}
			continue
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return ErrInvalidJSON
		}
		var o Offer
		var hasID bool
		for d.dec.PeekKind() != '}' {
			var tmp [32]byte
			name, err := d.name(tmp[:0])
			if err != nil {
				return err
			}
			v, err := d.dec.ReadValue()
			if err != nil {
				return ErrInvalidJSON
			}
			switch string(name) {
			case "offer":
				o.SDP = v
			case "offer_id":
				hasID = parseBinary(v, &o.ID)
			}
		}
		if _, err := d.dec.ReadToken(); err != nil {
			return ErrInvalidJSON
		}
		switch {
		case !hasID:
			f.offersErr = ErrInvalidOfferID
		case !truthy(o.SDP):
			f.offersErr = ErrInvalidOffers
		case len(o.SDP) > lim.MaxSDPBytes:
			f.offersErr = ErrSDPTooLarge
		default:
			req.Offers = append(req.Offers, o)
		}
	}
	_, err := d.dec.ReadToken() // ']'
	return refJSONErr(err)
}

func refJSONErr(err error) error {
	if err != nil {
		return ErrInvalidJSON
	}
	return nil
}

// FuzzDecodeMatchesReference checks the scanner against jsontext: Decode
// and refDecode must agree on every input, in their error and in what they
// read.
func FuzzDecodeMatchesReference(f *testing.F) {
	frames, _ := filepath.Glob("testdata/*.json")
	for _, name := range frames {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range scannerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkMatchesReference(t, data) })
}

// scannerSeeds are the corners of JSON where a scanner may go wrong.
var scannerSeeds = []string{
	``, ` `, `{`, `}`, `[`, `]`, `,`, `:`, `{}`, `[]`, `{} `, `{}x`, `{} {}`, `[1,2`, `"abc"`, `"abc`, `"\x"`,
	`null`, `nul`, `nullx`, `true`, `tru`, `false`, `0`, `01`, `-`, `-0`, `1.`, `1.5x`, `1e`, `1e+`, `1E-5`, `-x`, `0x`,
	`{"action":"announce",}`, `{,"action":"announce"}`, `{"action" "announce"}`, `{"action":"announce" "a":1}`,
	`{"a":[1,2,]}`, `{"a":{"b":}}`, `{"a":{"b":1,}}`, `{"a":[{"b":[]}, {}]}`, `{"a":tru}`, `{"a":01}`, `{"a":-}`,
	`{"a":"\ud800"}`, `{"a":"\ud800\udc00"}`, `{"a":"\udc00\ud800"}`, `{"a":"\ud800\u0041"}`, `{"a":"\uD834\uDD1E"}`,
	`{"a":"\u00e9\u00FF\/\b\f\n\r\t\"\\"}`, `{"a":"\u00g0"}`, `{"a":"\u00"}`, "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}",
	"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xef\xbf\xbd\"}", "{\"a\":\"é😀\"}", "{\"a\":1}\xff", "\xff{}",
	`{"\u0061ction":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb"}`,
	`{"action":"scrape","info_hash":["aaaaaaaaaaaaaaaaaaaa" , "bbbbbbbbbbbbbbbbbbbb"]}`,
	`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":nullx}`,
	`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":[1,{"offer":1,"offer_id":"cccccccccccccccccccc"},]}`,
	`{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":[{"offer":{"a":[[[]]]},"offer_id":"cccccccccccccccccccc"}], "offers":{}}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	`{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`,
	`{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`,
	`{"a":` + strings.Repeat(`{"b":`, maxDepth-1) + `1` + strings.Repeat("}", maxDepth-1) + `}`,
	`{"a":` + strings.Repeat(`{"b":`, maxDepth) + `1` + strings.Repeat("}", maxDepth) + `}`,
	`{"offers":[{"offer":` + strings.Repeat("[", maxDepth-3) + strings.Repeat("]", maxDepth-3) + `,"offer_id":"cccccccccccccccccccc"}]}`,
	`{"offers":[{"offer":` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `,"offer_id":"cccccccccccccccccccc"}]}`,
	`{"a":[` + strings.Repeat(`[],{},`, 70) + strings.Repeat("[{\"x\":", 70) + strings.Repeat("1}]", 70) + `]}`,
}

func checkMatchesReference(t *testing.T, data []byte) {
	t.Helper()
	for _, lim := range []Limits{{}, {MaxOffers: 2, MaxSDPBytes: 700, MaxInfoHashes: 3}} {
		var got, want Request
		gotErr := Decode(data, &got, lim)
		wantErr := refDecode(data, &want, lim)
		if gotErr != wantErr && (gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error()) {
			t.Fatalf("Decode(%q) = %v, jsontext's decoder says %v", data, gotErr, wantErr)
		}
		if wantErr != nil {
			if got.Action != want.Action || got.HasInfoHash != want.HasInfoHash || got.InfoHash != want.InfoHash {
				t.Fatalf("Decode(%q) failed with %v, %v, %v; jsontext's decoder with %v, %v, %v",
					data, got.Action, got.HasInfoHash, got.InfoHash, want.Action, want.HasInfoHash, want.InfoHash)
			}
			continue
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("Decode(%q) = %+v, jsontext's decoder read %+v", data, got, want)
		}
	}
}

func normalize(r Request) Request {
	if len(r.Offers) == 0 {
		r.Offers = nil
	}
	if len(r.InfoHashes) == 0 {
		r.InfoHashes = nil
	}
	return r
}

func TestDecodeMatchesReference(t *testing.T) {
	for _, s := range scannerSeeds {
		checkMatchesReference(t, []byte(s))
	}
}

// BenchmarkDecodeReference is BenchmarkDecodeAnnounce with jsontext's
// decoder, to compare in one run.
func BenchmarkDecodeReference(b *testing.B) {
	in, err := os.ReadFile("testdata/webtorrent-announce-started.json")
	if err != nil {
		b.Fatal(err)
	}
	var req Request
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if err := refDecode(in, &req, Limits{}); err != nil || len(req.Offers) != 5 {
			b.Fatalf("refDecode = %v, %d offers", err, len(req.Offers))
		}
	}
}
