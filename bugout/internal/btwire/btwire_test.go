package btwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// Captured from webtorrent 1.9.7 (bugout-vectors.json peer_wire).
const (
	handshakeHex = "13426974546f7272656e742070726f746f636f6c0000000000100004b0c288a5052b1b260145d1ed3e2a6980288fda972d5757303130392d414141414141414141414141"
	extBrowserS  = "000000c4140064323a656b34343a32487174776d74487471694e71505361416e623851355870593545645245337238383569674753386a647844323a6964393a746573742d726f6f6d313a6d6431303a626f5f6368616e6e656c69336531313a6c745f646f6e746861766569326531313a75745f6d657461646174616931656531333a6d657461646174615f73697a6569383365323a706b34343a38736277737739636e62475479384c34434e3867756851346655335438443451697137316637324543624b6565"
)

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stream is what webtorrent sends after its handshake: BEP 10 handshake,
// have-all, bitfield, keep-alive, unchoke, an unknown extension, a
// bo_channel payload.
func stream(t testing.TB) []byte {
	var b []byte
	b = append(b, unhex(t, handshakeHex)...)
	b = append(b, unhex(t, extBrowserS)...)
	b = AppendMessage(b, HaveAll, nil)
	b = AppendMessage(b, Bitfield, []byte{0x80})
	b = append(b, KeepAlive()...)
	b = AppendMessage(b, Unchoke, nil)
	b = AppendExtended(b, 2, []byte("lt_donthave"))
	return AppendExtended(b, 1, []byte("d1:pe"))
}

func TestReaderReassembles(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte at a time", iotest.OneByteReader},
		{"half", iotest.HalfReader},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.r(bytes.NewReader(stream(t))), 1<<16)
			h, err := r.ReadHandshake()
			if err != nil || string(h.PeerID[:]) != "-WW0109-AAAAAAAAAAAA" || !h.SupportsExtended() {
				t.Fatalf("ReadHandshake = %+v, %v", h, err)
			}
			var got []string
			for {
				m, err := r.ReadMessage()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case m.KeepAlive:
					got = append(got, "keep-alive")
				case m.ID == Extended:
					got = append(got, "ext"+string('0'+m.ExtID)+":"+string(m.Payload[:5]))
				default:
					got = append(got, hex.EncodeToString([]byte{m.ID}))
				}
			}
			want := "ext0:d2:ek 0e 05 keep-alive 01 ext2:lt_do ext1:d1:pe"
			if s := joinSpace(got); s != want {
				t.Errorf("messages = %s, want %s", s, want)
			}
		})
	}
}

func joinSpace(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

func TestReaderLimits(t *testing.T) {
	var b []byte
	b = AppendExtended(b, 1, bytes.Repeat([]byte{'x'}, 100))
	b = AppendMessage(b, Bitfield, []byte{0x80})
	b = AppendMessage(b, Extended, nil) // no ext id
	b = append(b, 0, 0, 1, 0, 5)        // truncated
	r := NewReader(bytes.NewReader(b), 50)
	var tl *TooLargeError
	if _, err := r.ReadMessage(); !errors.As(err, &tl) || tl.Len != 102 {
		t.Errorf("oversized: %v", err)
	}
	if m, err := r.ReadMessage(); err != nil || m.ID != Bitfield {
		t.Errorf("after oversized: %+v %v (stream must stay in sync)", m, err)
	}
	if _, err := r.ReadMessage(); !errors.Is(err, ErrEmptyExtended) {
		t.Errorf("empty extended: %v", err)
	}
	if _, err := r.ReadMessage(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v", err)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	good := unhex(t, handshakeHex)
	bad := bytes.Clone(good)
	bad[5] = 'X'
	for _, in := range [][]byte{append([]byte{18}, good[1:]...), bad, good[:40]} {
		if _, err := ReadHandshake(bytes.NewReader(in)); err == nil {
			t.Errorf("ReadHandshake(%x) accepted", in)
		}
	}
}

func TestExtHandshake(t *testing.T) {
	raw := unhex(t, extBrowserS)[6:]
	h, err := ParseExtHandshake(raw)
	if err != nil {
		t.Fatal(err)
	}
	if h.M["bo_channel"] != 3 || h.M["ut_metadata"] != 1 || string(h.ID) != "test-room" ||
		string(h.PK) != "8sbwsw9cnbGTy8L4CN8guhQ4fU3T8D4Qiq71f72ECbKe" || string(h.EK) != "2HqtwmtHtqiNqPSaAnb8Q5XpY5EdRE3r885igGS8jdxD" {
		t.Errorf("ParseExtHandshake = %+v", h)
	}
	ours, err := ExtHandshake{M: map[string]int64{"bo_channel": 1}, ID: []byte("r"), PK: []byte("pk"), EK: []byte("ek")}.Marshal()
	if err != nil || string(ours) != "d2:ek2:ek2:id1:r1:md10:bo_channeli1ee2:pk2:pke" {
		t.Errorf("Marshal = %q, %v", ours, err)
	}
	for _, in := range []string{"", "le", "d1:mi5ee", "d2:pkli1eee", "d2:id1:x1:md10:bo_channeli1eee", "d1:md10:bo_channeli1eeex"} {
		if _, err := ParseExtHandshake([]byte(in)); err == nil {
			t.Errorf("ParseExtHandshake(%q) accepted", in)
		}
	}
	// Out-of-range and non-integer m entries are dropped, not fatal.
	h, err = ParseExtHandshake([]byte("d1:md10:bo_channeli300e3:foo3:bar2:uti0eee"))
	if err != nil || len(h.M) != 0 {
		t.Errorf("odd m = %+v, %v", h, err)
	}
}

// FuzzWire feeds arbitrary bytes to the peer-wire reader: no panic, and
// every message read re-encodes to bytes that read back the same.
func FuzzWire(f *testing.F) {
	f.Add(stream(f))
	f.Add(unhex(f, handshakeHex))
	f.Add(append(unhex(f, handshakeHex), 0xff, 0xff, 0xff, 0xff, 1))
	f.Add([]byte{0, 0, 0, 1, 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 1<<12)
		if _, err := r.ReadHandshake(); err != nil {
			r = NewReader(bytes.NewReader(data), 1<<12) // also parse it as bare messages
		}
		for range 1000 {
			m, err := r.ReadMessage()
			var tl *TooLargeError
			if errors.As(err, &tl) || errors.Is(err, ErrEmptyExtended) {
				continue
			}
			if err != nil {
				return
			}
			var enc []byte
			switch {
			case m.KeepAlive:
				enc = KeepAlive()
			case m.ID == Extended:
				enc = AppendExtended(nil, m.ExtID, m.Payload)
			default:
				enc = AppendMessage(nil, m.ID, m.Payload)
			}
			m2, err := NewReader(bytes.NewReader(enc), 1<<12).ReadMessage()
			if err != nil || m2.KeepAlive != m.KeepAlive || m2.ID != m.ID || m2.ExtID != m.ExtID || !bytes.Equal(m2.Payload, m.Payload) {
				t.Fatalf("round trip %+v → %x → %+v, %v", m, enc, m2, err)
			}
		}
	})
}

// FuzzBencodeHandshake feeds arbitrary bytes to the BEP 10 handshake
// parser: no panic, and what parses re-encodes and parses the same.
func FuzzBencodeHandshake(f *testing.F) {
	f.Add(unhex(f, extBrowserS)[6:])
	f.Add([]byte("d2:ek2:ek2:id1:r1:md10:bo_channeli1ee2:pk2:pke"))
	f.Add([]byte("d1:md10:bo_channeli300eee"))
	f.Add([]byte("d1:mli1eee"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseExtHandshake(data)
		if err != nil {
			return
		}
		enc, err := h.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%+v) = %v", h, err)
		}
		h2, err := ParseExtHandshake(enc)
		if err != nil || !bytes.Equal(h.ID, h2.ID) || !bytes.Equal(h.PK, h2.PK) || !bytes.Equal(h.EK, h2.EK) || len(h.M) != len(h2.M) {
			t.Fatalf("round trip %+v → %q → %+v, %v", h, enc, h2, err)
		}
		for k, v := range h.M {
			if h2.M[k] != v {
				t.Fatalf("m[%q] = %d → %d", k, v, h2.M[k])
			}
		}
	})
}
