package bugout

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/bugout/internal/benc"
	"github.com/boxsignal/boxsignal/bugout/internal/btwire"
	"golang.org/x/crypto/nacl/box"
)

// vectors is testdata/bugout-vectors.json, made by the real bugout@0.0.13
// code (shared/specs/bugout-vectors.json).
type vectors struct {
	Identities []struct {
		Label         string `json:"label"`
		SeedBytesHex  string `json:"seed_bytes_hex"`
		SeedString    string `json:"seed_string"`
		Ed25519Public string `json:"ed25519_public_hex"`
		PK            string `json:"pk"`
		Sha512PubHex  string `json:"sha512_pub_hex"`
		RipemdHex     string `json:"ripemd160_sha512_pub_hex"`
		Address       string `json:"address"`
		Box           *struct {
			SecretHex string `json:"secret_hex"`
			PublicHex string `json:"public_hex"`
			EK        string `json:"ek"`
		} `json:"box"`
	} `json:"identities"`
	InfoHash struct {
		Cases []struct {
			Identifier string `json:"identifier"`
			InfoHex    string `json:"info_bencode_hex"`
			InfoHash   string `json:"infoHash"`
			Private    bool   `json:"private"`
		} `json:"cases"`
	} `json:"infohash"`
	Packets []struct {
		Name        string         `json:"name"`
		T           int64          `json:"t"`
		OuterHex    string         `json:"outer_hex"`
		SeenKeyHex  string         `json:"seen_key_hex"`
		InnerFields map[string]any `json:"inner_fields"`
		InnerHex    string         `json:"inner_bencode_hex"`
		SigHex      string         `json:"signature_hex"`
		Encrypted   *struct {
			NHex string `json:"n_hex"`
			EK   string `json:"ek"`
			EHex string `json:"e_hex"`
		} `json:"encrypted"`
		DecryptedHex string `json:"decrypted_signed_envelope_hex"`
	} `json:"packets"`
	PeerWire map[string]any `json:"peer_wire"`
}

func loadVectors(t testing.TB) *vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/bugout-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorIdentities(t *testing.T) {
	v := loadVectors(t)
	if len(v.Identities) != 3 {
		t.Fatalf("%d identities, want 3", len(v.Identities))
	}
	for _, vi := range v.Identities {
		t.Run(vi.Label, func(t *testing.T) {
			id, err := ParseSeed(vi.SeedString)
			if err != nil {
				t.Fatalf("ParseSeed(%q) = %v", vi.SeedString, err)
			}
			if vi.SeedBytesHex != "" {
				fromRaw, err := IdentityFromSeed(unhex(t, vi.SeedBytesHex))
				if err != nil {
					t.Fatal(err)
				}
				if got := fromRaw.Seed(); got != vi.SeedString {
					t.Errorf("Seed() = %q, want %q", got, vi.SeedString)
				}
			}
			if got := hex.EncodeToString(id.pub); got != vi.Ed25519Public {
				t.Errorf("public = %s, want %s", got, vi.Ed25519Public)
			}
			if id.PublicKey() != vi.PK {
				t.Errorf("pk = %q, want %q", id.PublicKey(), vi.PK)
			}
			if string(id.Address()) != vi.Address {
				t.Errorf("address = %q, want %q", id.Address(), vi.Address)
			}
			if vi.Box != nil {
				k, err := boxKeyFromSecret(secret32(unhex(t, vi.Box.SecretHex)))
				if err != nil {
					t.Fatal(err)
				}
				if k.ek != vi.Box.EK || hex.EncodeToString(k.public[:]) != vi.Box.PublicHex {
					t.Errorf("ek = %q %x, want %q %s", k.ek, k.public, vi.Box.EK, vi.Box.PublicHex)
				}
			}
		})
	}
}

func TestVectorInfoHash(t *testing.T) {
	v := loadVectors(t)
	if len(v.InfoHash.Cases) != 7 {
		t.Fatalf("%d infohash cases, want 7", len(v.InfoHash.Cases))
	}
	for _, c := range v.InfoHash.Cases {
		got, err := InfoHash(c.Identifier, c.Private)
		if err != nil {
			t.Fatalf("InfoHash(%q) = %v", c.Identifier, err)
		}
		if hex.EncodeToString(got[:]) != c.InfoHash {
			t.Errorf("InfoHash(%q, %v) = %x, want %s", c.Identifier, c.Private, got, c.InfoHash)
		}
	}
	if _, err := InfoHash(string(make([]byte, MaxIdentifierBytes+1)), false); err == nil {
		t.Error("InfoHash of a 16385-byte identifier: no error")
	}
}

// queueReader returns the queued byte slices in order, as the stubbed nacl
// PRNG of vectors.js did.
type queueReader struct{ q [][]byte }

func (r *queueReader) Read(b []byte) (int, error) {
	if len(r.q) == 0 || len(r.q[0]) != len(b) {
		panic("queueReader: unexpected read")
	}
	n := copy(b, r.q[0])
	r.q = r.q[1:]
	return n, nil
}

func TestVectorPackets(t *testing.T) {
	v := loadVectors(t)
	if len(v.Packets) != 9 {
		t.Fatalf("%d packets, want 9", len(v.Packets))
	}
	ids := map[string]*Identity{}
	boxes := map[string]*boxKey{} // by ek
	for _, vi := range v.Identities {
		if vi.Box == nil {
			continue
		}
		id, _ := ParseSeed(vi.SeedString)
		ids[vi.PK] = id
		k, _ := boxKeyFromSecret(secret32(unhex(t, vi.Box.SecretHex)))
		boxes[k.ek] = k
	}
	for _, vp := range v.Packets {
		t.Run(vp.Name, func(t *testing.T) {
			f := vp.InnerFields
			str := func(k string) string { s, _ := f[k].(string); return s }
			hexField := func(k string) []byte {
				m, _ := f[k].(map[string]any)
				if m == nil {
					return nil
				}
				return unhex(t, m["hex"].(string))
			}
			id := ids[str("pk")]
			sender := boxes[str("ek")]
			params := map[string]any{"y": str("y")}
			for _, k := range []string{"v", "c", "a", "rr"} {
				if _, ok := f[k]; ok {
					params[k] = str(k)
				}
			}
			if rn := hexField("rn"); rn != nil {
				params["rn"] = rn
			}
			signed, err := makePacket(id, sender.ek, str("i"), int64(f["t"].(float64)), hexField("n"), params)
			if err != nil {
				t.Fatal(err)
			}
			var env envelope
			if err := benc.Unmarshal(signed, &env); err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(env.P); got != vp.InnerHex {
				t.Errorf("inner = %q\nwant    %q", env.P, unhex(t, vp.InnerHex))
			}
			if got := hex.EncodeToString(env.S); got != vp.SigHex {
				t.Errorf("signature = %s, want %s", got, vp.SigHex)
			}
			outer := signed
			recipient := sender // whose box secret opens it
			if vp.Encrypted != nil {
				if got := hex.EncodeToString(signed); got != vp.DecryptedHex {
					t.Errorf("signed envelope = %s, want %s", got, vp.DecryptedHex)
				}
				// The recipient is the other box key.
				for ek, k := range boxes {
					if ek != sender.ek {
						recipient = k
					}
				}
				nonce := [24]byte(unhex(t, vp.Encrypted.NHex))
				if outer, err = encryptPacket(sender, &recipient.public, &nonce, signed); err != nil {
					t.Fatal(err)
				}
				sk := [32]byte(recipient.secret)
				plain, ok := box.Open(nil, unhex(t, vp.Encrypted.EHex), &nonce, &sender.public, &sk)
				if !ok || !bytes.Equal(plain, unhex(t, vp.DecryptedHex)) {
					t.Errorf("box.Open(e) = %x, %v, want %s", plain, ok, vp.DecryptedHex)
				}
			}
			if got := hex.EncodeToString(outer); got != vp.OuterHex {
				t.Errorf("outer = %s\nwant    %s", got, vp.OuterHex)
			}
			if got := keyOf(outer); hex.EncodeToString(got[:]) != vp.SeenKeyHex {
				t.Errorf("seen key = %x, want %s", got, vp.SeenKeyHex)
			}
			// The receive path opens the vector bytes.
			o := opener{box: recipient, identifier: str("i"), timeout: 5 * time.Minute, skew: time.Minute, maxBytes: 64 << 10}
			op, err := o.open(unhex(t, vp.OuterHex), time.UnixMilli(vp.T).Add(time.Second))
			if err != nil {
				t.Fatalf("open = %v", err)
			}
			if op.from != id.Address() || op.encrypted != (vp.Encrypted != nil) || string(op.pkt.Y) != str("y") {
				t.Errorf("open = from %s encrypted %v y %q", op.from, op.encrypted, op.pkt.Y)
			}
		})
	}
}

// TestVectorPeerAPI rebuilds room_ping and room_message through the Peer
// API with the vectors' stubbed rand and clock.
func TestVectorPeerAPI(t *testing.T) {
	v := loadVectors(t)
	want := map[string]string{}
	for _, p := range v.Packets {
		want[p.Name] = p.OuterHex
	}
	id, _ := IdentityFromSeed(bytes.Repeat([]byte{0x23}, 32))
	seq := func(start byte, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = start + byte(i)
		}
		return b
	}
	r := &queueReader{q: [][]byte{bytes.Repeat([]byte{0x42}, 32), make([]byte, 12), seq(1, 8), seq(0x11, 8), seq(0x21, 8)}}
	p, err := New(Config{Identity: id, Identifier: "test-room", Rand: r, Clock: func() time.Time { return time.UnixMilli(1700000000000) }, Heartbeat: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct {
		name string
		make func() ([]byte, error)
	}{
		{"room_ping", func() ([]byte, error) { return p.newPacket(map[string]any{"y": typePing}) }},
		{"room_message", func() ([]byte, error) { return p.messagePacket(map[string]any{"hello": "world", "n": 42}) }},
		{"room_message_utf8", func() ([]byte, error) { return p.messagePacket(map[string]any{"msg": "héllo ☃"}) }},
	} {
		b, err := c.make()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != want[c.name] {
			t.Errorf("%s = %s\nwant %s", c.name, got, want[c.name])
		}
	}
	r.q = append(r.q, seq(0x31, 8)) // the leave packet Close sends
}

func TestVectorPeerWire(t *testing.T) {
	v := loadVectors(t)
	pw := v.PeerWire
	ih, _ := InfoHash("test-room", false)
	for _, c := range []struct{ key, peerID string }{
		{"handshake_S_to_C_hex", "-WW0109-AAAAAAAAAAAA"},
		{"handshake_C_to_S_hex", "-WW0109-BBBBBBBBBBBB"},
	} {
		raw := unhex(t, pw[c.key].(string))
		h, err := btwire.ParseHandshake(raw)
		if err != nil {
			t.Fatalf("ParseHandshake(%s) = %v", c.key, err)
		}
		if h.InfoHash != ih || string(h.PeerID[:]) != c.peerID || !h.SupportsExtended() {
			t.Errorf("%s = %+v", c.key, h)
		}
		if !bytes.Equal(h.Bytes(), raw) {
			t.Errorf("%s re-encodes to %x", c.key, h.Bytes())
		}
		// Ours differs only in the reserved fast bit.
		ours := btwire.Handshake{Reserved: btwire.ReservedExtended, InfoHash: ih, PeerID: h.PeerID}.Bytes()
		raw[27] = 0
		if !bytes.Equal(ours, raw) {
			t.Errorf("our handshake %x, want %x", ours, raw)
		}
	}
	for _, key := range []string{"ext_handshake_browser_S_hex", "ext_handshake_browser_C_hex", "ext_handshake_node_S_hex", "ext_handshake_node_C_hex"} {
		raw := unhex(t, pw[key].(string))
		r := btwire.NewReader(bytes.NewReader(raw), 1<<16)
		m, err := r.ReadMessage()
		if err != nil || m.ID != btwire.Extended || m.ExtID != 0 {
			t.Fatalf("%s: %+v %v", key, m, err)
		}
		h, err := btwire.ParseExtHandshake(m.Payload)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		wantID := int64(3)
		if bytes.Contains([]byte(key), []byte("node")) {
			wantID = 4
		}
		if h.M["bo_channel"] != wantID || string(h.ID) != "test-room" || len(h.PK) < 43 || len(h.EK) < 43 {
			t.Errorf("%s = %+v", key, h)
		}
	}
}
