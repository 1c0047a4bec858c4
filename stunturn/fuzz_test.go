package stunturn

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// seedFrames are messages as clients send them: unauthenticated and
// authenticated requests, peers in odd spellings, ChannelData.
func seedFrames(tb testing.TB) [][]byte {
	tb.Helper()
	user, pass := NewCredentials(testSecret, "fuzz", 1<<40, testNow)
	auth := func(m stun.Method, extra ...stun.Setter) []byte {
		s := append([]stun.Setter{stun.TransactionID, stun.NewType(m, stun.ClassRequest)}, extra...)
		s = append(s, stun.NewUsername(user), stun.NewRealm(DefaultRealm), stun.NewNonce("nonce"),
			stun.NewLongTermIntegrity(user, DefaultRealm, pass))
		return stun.MustBuild(s...).Raw
	}
	peer := func(a string) peerAttr { return peerAttr(netip.AddrPortFrom(netip.MustParseAddr(a), 3478)) }
	return [][]byte{
		stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw,
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transportAttr(protoUDP)).Raw,
		auth(stun.MethodAllocate, transportAttr(protoUDP), familyAttr(famV6)),
		auth(stun.MethodRefresh, attr{stun.AttrLifetime, []byte{0, 0, 2, 0x58}}),
		auth(stun.MethodCreatePermission, peer("8.8.8.8"), peer("::ffff:127.0.0.1")),
		auth(stun.MethodCreatePermission, peer("64:ff9b::7f00:1")),
		auth(stun.MethodChannelBind, channelAttr(0x4000), peer("1.1.1.1")),
		auth(stun.MethodChannelBind, channelAttr(0x4001), peer("169.254.169.254")),
		auth(stun.MethodConnect, peer("2002:7f00:1::")),
		auth(stun.MethodConnectionBind, attr{stun.AttrConnectionID, []byte{1, 2, 3, 4}}),
		stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peer("8.8.8.8"),
			attr{stun.AttrData, []byte("hi")}).Raw,
		{0x40, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0},
	}
}

var testNow = timeUnix(1_800_000_000)

type nopReplier struct{ n int }

func (r *nopReplier) reply([]byte, net.Addr) { r.n++ }

// fuzzServer is a Server with no sockets, enough for admit.
func fuzzServer(tb testing.TB) (*Server, net.Addr, net.Addr) {
	cfg, err := Config{Secrets: [][]byte{[]byte("an-older-secret-0123456789"), testSecret}, MaxPermissions: 2}.withDefaults()
	if err != nil {
		tb.Fatal(err)
	}
	m, _ := newMetrics(nil)
	s := &Server{
		cfg: cfg, log: slog.New(slog.DiscardHandler), m: m,
		filter: newPeerFilter(nil, nil, false),
		auth:   &authenticator{realm: cfg.Realm, secrets: cfg.Secrets},
		quota:  newQuotas(cfg.UserQuota, cfg.TotalQuota),
		unauth: newSourceLimiter(1e12),
		stash:  make(map[string][]byte),
	}
	src := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 5000}
	local := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 3478}
	s.allocs.add(allocKey(src, local))
	return s, src, local
}

// FuzzAdmit runs the guard on arbitrary datagrams: it must not panic, and
// ChannelData must always pass.
func FuzzAdmit(f *testing.F) {
	for _, b := range seedFrames(f) {
		f.Add(b)
	}
	s, src, local := fuzzServer(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &nopReplier{}
		ok := s.admit(b, src, local, r)
		if isChannelData(b) && !ok {
			t.Errorf("ChannelData %x refused", b)
		}
		if ok && r.n > 0 {
			t.Errorf("admitted %x and also answered it", b)
		}
	})
}

// TestGuardSeeds pins the guard's verdicts on the seed frames.
func TestGuardSeeds(t *testing.T) {
	s, src, local := fuzzServer(t)
	want := []struct {
		admit   bool
		replied bool
	}{
		{true, false}, {true, false}, {true, false}, {true, false},
		{false, true}, // ::ffff:127.0.0.1 → 403
		{false, true}, // 64:ff9b::7f00:1 → 403
		{true, false},
		{false, true}, // 169.254.169.254 → 403
		{false, true}, // 2002:7f00:1:: → 403
		{true, false}, {true, false}, {true, false},
	}
	for i, b := range seedFrames(t) {
		r := &nopReplier{}
		ok := s.admit(b, src, local, r)
		if ok != want[i].admit || (r.n > 0) != want[i].replied {
			t.Errorf("seed %d: admit = %v, replied %d, want %v, %v", i, ok, r.n, want[i].admit, want[i].replied)
		}
	}
	// Signed with the second secret: the key is left for the AuthHandler.
	if len(s.stash) == 0 {
		t.Error("no key stashed for a request signed with the second secret")
	}
}

// FuzzFramer splits a stream at arbitrary points: the frames must be the
// same as when it arrives whole, and each must have its declared size.
func FuzzFramer(f *testing.F) {
	var stream []byte
	for _, b := range seedFrames(f) {
		stream = append(stream, b...)
		f.Add(b, uint8(3))
	}
	f.Add(stream, uint8(7))
	f.Add([]byte{0x40, 0x00, 0xff, 0xfd}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, step uint8) {
		whole, werr := frames(b, len(b)+1)
		split, serr := frames(b, int(step%64)+1)
		if (werr == nil) != (serr == nil) || len(whole) != len(split) {
			t.Fatalf("whole: %d frames, %v; split: %d frames, %v", len(whole), werr, len(split), serr)
		}
		for i := range whole {
			if !bytes.Equal(whole[i], split[i]) {
				t.Fatalf("frame %d differs", i)
			}
			if n, err := frameSize(whole[i]); err != nil || n != len(whole[i]) {
				t.Fatalf("frame %d: frameSize = %d, %v; len %d", i, n, err, len(whole[i]))
			}
		}
	})
}

// frames feeds b to a framer step bytes at a time.
func frames(b []byte, step int) ([][]byte, error) {
	var f framer
	var out [][]byte
	for len(b) > 0 {
		n := min(step, len(b))
		f.buf = append(f.buf, b[:n]...)
		b = b[n:]
		for {
			fr, err := f.next()
			if err != nil {
				return out, err
			}
			if fr == nil {
				break
			}
			out = append(out, append([]byte(nil), fr...))
		}
	}
	return out, nil
}

// TestFramedConnOneFrameEachRead: pion's STUNConn must never get two frames
// from one Read, or it would run ahead of the guard.
func TestFramedConnOneFrameEachRead(t *testing.T) {
	s, _, _ := fuzzServer(t)
	var seeds [][]byte
	var bind []byte
	for _, fr := range seedFrames(t) {
		if isConnectionBind(fr) {
			bind = fr
			continue
		}
		seeds = append(seeds, fr)
	}
	// After a ConnectionBind the stream is peer data, passed through as is.
	tailData := []byte("raw peer data, not a frame")
	seeds = append(seeds, bind)
	a, b := net.Pipe()
	defer a.Close()
	fc := &framedConn{Conn: b, raw: b, s: s}
	fc.s.conns = map[net.Conn]struct{}{}
	go func() {
		var all []byte
		for _, fr := range seeds {
			all = append(all, fr...)
		}
		_, _ = a.Write(append(all, tailData...))
		a.Close()
	}()
	buf := make([]byte, 1600)
	var got int
	// net.Pipe's addresses match no allocation, so the guard passes every
	// frame to pion.
	for got < len(seeds) {
		n, err := fc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if size, _ := frameSize(buf[:n]); size != n {
			t.Fatalf("Read returned %d bytes, frame is %d", n, size)
		}
		got++
	}
	rest, err := io.ReadAll(fc)
	if err != nil || !bytes.Equal(rest, tailData) {
		t.Errorf("after ConnectionBind read %q, %v; want %q", rest, err, tailData)
	}
	fc.Close()
}

func timeUnix(s int64) time.Time { return time.Unix(s, 0) }
