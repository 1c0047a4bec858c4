package dht

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func sampleMsgs() []*msg {
	sdp := []byte(`{"type":"offer","sdp":"v=0\r\n"}`)
	return []*msg{
		{kind: kindOffers, infoHash: hashOf("ih"), from: hashOf("from"), offers: []wire.Offer{{ID: hashOf("o1"), SDP: sdp}, {ID: hashOf("o2"), SDP: sdp}}},
		{kind: kindAnswer, infoHash: hashOf("ih"), from: hashOf("y"), to: hashOf("x"), offerID: hashOf("o1"), sdp: []byte(`{"type":"answer","sdp":"v=0"}`)},
		{kind: kindWant, key: KeyOf(&wire.Hash{1}), peers: 3, ttl: 150},
		{kind: kindHave, key: KeyOf(&wire.Hash{2}), peers: 0},
		{kind: kindNack, infoHash: hashOf("ih"), from: hashOf("from")},
	}
}

func TestMsgRoundTrip(t *testing.T) {
	for _, m := range sampleMsgs() {
		var got msg
		if err := got.decode(m.encode(nil)); err != nil {
			t.Fatalf("%v: %v", m.kind, err)
		}
		if !bytes.Equal(got.encode(nil), m.encode(nil)) {
			t.Errorf("%v: round trip changed the message", m.kind)
		}
	}
}

func TestMsgRefusesBadInput(t *testing.T) {
	ok := sampleMsgs()[1].encode(nil)
	for name, b := range map[string][]byte{
		"empty":       {},
		"no version":  ok[2:],
		"truncated":   ok[:len(ok)-3],
		"two bodies":  append(append([]byte{}, ok...), ok[2:]...),
		"bad sdp":     (&msg{kind: kindAnswer, sdp: []byte(`{"a":1},"injected":{`)}).encode(nil),
		"null sdp":    (&msg{kind: kindAnswer, sdp: []byte(`null`)}).encode(nil),
		"short key":   append([]byte{8, 1, 0x62, 4, 0x0a, 2, 1, 2}, ok[:0]...),
		"no offers":   (&msg{kind: kindOffers}).encode(nil),
		"many offers": (&msg{kind: kindOffers, offers: make([]wire.Offer, maxBatch+1)}).encode(nil),
	} {
		var m msg
		if err := m.decode(b); err == nil {
			t.Errorf("%s: decoded %+v", name, m)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMsgs() {
		f.Add(m.encode(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m msg
		if m.decode(b) != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		var again msg
		if err := again.decode(m.encode(nil)); err != nil {
			t.Fatalf("re-encoding of a valid message does not decode: %v", err)
		}
		if !bytes.Equal(again.encode(nil), m.encode(nil)) {
			t.Fatal("re-encoding is not stable")
		}
		if m.kind == kindAnswer && checkSDP(m.sdp) != nil {
			t.Fatal("an invalid SDP passed")
		}
	})
}

func TestKeyOfIsDomainSeparated(t *testing.T) {
	ih := hashOf("room")
	k := KeyOf(&ih)
	if bytes.Contains(k[:], ih[:4]) || k == KeyOf(&wire.Hash{}) {
		t.Fatal("room key leaks or collides")
	}
	if k.cid().Prefix().Codec != 0x55 {
		t.Fatal("room CID is not raw")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "p2p.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !k1.Equals(k2) {
		t.Fatalf("second load: %v", err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v", k1.Type())
	}
	os.WriteFile(path, []byte("junk"), 0o600)
	if _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "not a libp2p private key") {
		t.Fatalf("junk key: %v", err)
	}
}

func TestParseFriends(t *testing.T) {
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	good := "# friends\n\n" + id.String() + "  bob-pi  addrs=/ip4/198.51.100.7/tcp/4001,/ip4/198.51.100.7/udp/4001/quic-v1 rate=20/s burst=40 # the Pi\n"
	fs, err := ParseFriends(strings.NewReader(good))
	if err != nil || len(fs) != 1 || fs[0].Name != "bob-pi" || len(fs[0].Addrs) != 2 || fs[0].Rate != 20 || fs[0].Burst != 40 {
		t.Fatalf("%+v %v", fs, err)
	}
	if again, err := ParseFriends(strings.NewReader(fs[0].String())); err != nil || again[0].String() != fs[0].String() {
		t.Fatalf("String does not round-trip: %v", err)
	}
	for name, text := range map[string]string{
		"no name":      id.String(),
		"bad id":       "12D3KooWnope bob",
		"bad name":     id.String() + " bob/pi",
		"bad addr":     id.String() + " bob addrs=/ip4/300.1.1.1/tcp/1",
		"bad option":   id.String() + " bob color=red",
		"zero rate":    id.String() + " bob rate=0",
		"duplicate id": id.String() + " bob\n" + id.String() + " alice",
		"dup name":     id.String() + " bob\n12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo bob",
		"rsa-style id": "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N bob",
	} {
		if _, err := ParseFriends(strings.NewReader(text)); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("%s: error %v, want one naming the line", name, err)
		}
	}
}
