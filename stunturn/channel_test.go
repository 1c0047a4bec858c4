package stunturn

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// readFrom reads one datagram from pc within timeout.
func readFrom(t *testing.T, pc *net.UDPConn, timeout time.Duration) ([]byte, netip.AddrPort, error) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := pc.ReadFromUDPAddrPort(buf)
	return buf[:n], from, err
}

func listenUDP4(t testing.TB) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// TestChannelFastPath: a UDP client's ChannelData is relayed by the
// listener and the relay socket themselves, both ways, with the bytes pion
// would send, and only while pion has the channel. What is not ChannelData
// on a bound channel still reaches pion: Send indications one way, Data
// indications the other.
func TestChannelFastPath(t *testing.T) {
	s := newTestServer(t, Config{AllowLoopbackForTests: true, SocketsPerPort: 1})
	peer, other := listenUDP4(t), listenUDP4(t) // same IP, two ports
	peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	otherAP := other.LocalAddr().(*net.UDPAddr).AddrPort()
	user, pass := restCreds("fast")
	c := dialTURN(t, "udp", s.udp(), user, pass)
	relay := c.mustAllocate(protoUDP, famV4)
	if code := c.channelBind(0x4001, peerAP); code != 0 {
		t.Fatalf("ChannelBind = %d", code)
	}
	r := s.udpRelay(net.UDPAddrFromAddrPort(relay))
	if r == nil {
		t.Fatal("no relay socket indexed for", relay)
	}
	if got, ok := r.channelPeer(0x4001); !ok || got != peerAP {
		t.Fatalf("mirrored channel 0x4001 = %v, %v; want %v", got, ok, peerAP)
	}

	// Client → peer.
	c.sendChannel(0x4001, []byte("hello"))
	if b, from, err := readFrom(t, peer, 2*time.Second); err != nil || string(b) != "hello" || from != relay {
		t.Fatalf("peer got %q from %v (%v), want %q from %v", b, from, err, "hello", relay)
	}
	// Peer → client: pion pads ChannelData to four bytes on UDP too.
	if _, err := peer.WriteToUDPAddrPort([]byte("abcde"), relay); err != nil {
		t.Fatal(err)
	}
	got, err := c.readFrame(time.Now().Add(2 * time.Second))
	if want := []byte{0x40, 0x01, 0, 5, 'a', 'b', 'c', 'd', 'e', 0, 0, 0}; err != nil || !bytes.Equal(got, want) {
		t.Fatalf("client got %x (%v), want %x", got, err, want)
	}
	// A permitted IP on a port without a channel: a Data indication.
	if _, err := other.WriteToUDPAddrPort([]byte("data"), relay); err != nil {
		t.Fatal(err)
	}
	got, err = c.readFrame(time.Now().Add(2 * time.Second))
	if err != nil {
		t.Fatalf("no Data indication: %v", err)
	}
	ind := &stun.Message{Raw: got}
	var from stun.XORMappedAddress
	if ind.Decode() != nil || ind.Type != stun.NewType(stun.MethodData, stun.ClassIndication) ||
		from.GetFromAs(ind, stun.AttrXORPeerAddress) != nil || from.Port != int(otherAP.Port()) {
		t.Fatalf("client got %x, want a Data indication from %v", got, otherAP)
	}
	if data, _ := ind.Get(stun.AttrData); string(data) != "data" {
		t.Errorf("Data indication carries %q, want %q", data, "data")
	}
	// A Send indication goes through pion.
	c.write(stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peerAttr(otherAP), attr{stun.AttrData, []byte("sent")}).Raw)
	if b, _, err := readFrom(t, other, 2*time.Second); err != nil || string(b) != "sent" {
		t.Fatalf("Send indication: peer got %q (%v)", b, err)
	}

	// The allocation ends: its channel and its client are forgotten, and
	// ChannelData is no longer relayed.
	if code := c.refresh(0); code != 0 {
		t.Fatalf("Refresh(0) = %d", code)
	}
	waitFor(t, "the mirror to forget the allocation", func() bool {
		_, ok := r.channelPeer(0x4001)
		r.turn.mu.RLock()
		defer r.turn.mu.RUnlock()
		return !ok && len(r.turn.allocs) == 0
	})
	c.sendChannel(0x4001, []byte("late"))
	if b, _, err := readFrom(t, peer, 300*time.Millisecond); err == nil {
		t.Errorf("after the allocation ended, peer got %q", b)
	}
}

// TestChannelFastPathAllocs: relaying ChannelData allocates nothing, in
// either direction, with the relay socket read by a relayPoller (Linux)
// and by pion's goroutine (elsewhere).
func TestChannelFastPathAllocs(t *testing.T) {
	for _, polled := range []bool{true, false} {
		t.Run(map[bool]string{true: "poller", false: "goroutine"}[polled], func(t *testing.T) {
			s, _, _ := fuzzServer(t)
			listener, peer, client := listenUDP4(t), listenUDP4(t), listenUDP4(t)
			c := newGuardedPacketConn(listener, s)
			r := &relayPacketConn{relayBase: relayBase{s: s}, turn: c, perms: make(map[netip.Addr]struct{})}
			if polled {
				p, err := newRelayPoller(listener)
				if err != nil {
					t.Fatal(err)
				}
				if p == nil {
					t.Skip("no relay poller on this platform")
				}
				defer p.close()
				sock, err := p.listenRelay("udp4", "127.0.0.1", 0)
				if err != nil {
					t.Fatal(err)
				}
				defer sock.Close()
				r.PacketConn, r.sock, sock.owner = sock, sock, r
				if err := p.add(sock); err != nil {
					t.Fatal(err)
				}
			} else {
				r.udp = listenUDP4(t)
				r.PacketConn = r.udp
			}
			clientAP := client.LocalAddr().(*net.UDPAddr).AddrPort()
			peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			relayAP := r.LocalAddr().(*net.UDPAddr).AddrPort()
			r.setClient(net.UDPAddrFromAddrPort(clientAP))
			r.setPermission(peerAP.Addr().AsSlice(), true)
			r.setChannel(0x4000, net.UDPAddrFromAddrPort(peerAP), true)

			frame := append([]byte{0x40, 0x00, 0, 100}, make([]byte, 100)...)
			buf := make([]byte, 2048)
			_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			if a := testing.AllocsPerRun(100, func() {
				if !c.relayChannelData(frame, clientAP) {
					t.Fatal("ChannelData not relayed")
				}
				if n, from, err := peer.ReadFromUDPAddrPort(buf); err != nil || n != 100 || from != relayAP {
					t.Fatalf("peer read %d bytes from %v, %v; want 100 from %v", n, from, err, relayAP)
				}
			}); a != 0 {
				t.Errorf("client → peer: %v allocations per datagram, want 0", a)
			}

			p := make([]byte, 1600)
			payload := make([]byte, 100)
			if a := testing.AllocsPerRun(100, func() {
				if _, err := peer.WriteToUDPAddrPort(payload, relayAP); err != nil {
					t.Fatal(err)
				}
				if !polled {
					if _, _, toPion, err := r.readOne(p); err != nil || toPion {
						t.Fatalf("readOne = toPion %v, %v; want relayed", toPion, err)
					}
				}
				n, _, err := client.ReadFromUDPAddrPort(buf)
				if err != nil || n != 104 || buf[0] != 0x40 || buf[3] != 100 {
					t.Fatalf("client got %x (%v), want ChannelData 0x4000 of 100 bytes", buf[:n], err)
				}
			}); a != 0 {
				t.Errorf("peer → client: %v allocations per datagram, want 0", a)
			}
		})
	}
}

// TestBindingBatchAllocs: reading Binding requests from the listening
// socket and answering them allocates nothing.
func TestBindingBatchAllocs(t *testing.T) {
	s, _, _ := fuzzServer(t)
	listener, client := listenUDP4(t), listenUDP4(t)
	c := newGuardedPacketConn(listener, s)
	c.mtu = 1600
	c.io = newListenerIO(listener, c.mtu, c.fastFn)
	to := listener.LocalAddr().(*net.UDPAddr).AddrPort()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw
	other := []byte("not STUN") // what next returns, after the Binding
	buf := make([]byte, 1500)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if a := testing.AllocsPerRun(100, func() {
		if _, err := client.WriteToUDPAddrPort(req, to); err != nil {
			t.Fatal(err)
		}
		if _, err := client.WriteToUDPAddrPort(other, to); err != nil {
			t.Fatal(err)
		}
		b, _, err := c.io.next()
		if err != nil || string(b) != string(other) {
			t.Fatalf("next = %q, %v; want %q", b, err, other)
		}
		n, _, err := client.ReadFromUDPAddrPort(buf)
		if err != nil || n < stunHeaderSize || buf[0] != 0x01 || buf[1] != 0x01 {
			t.Fatalf("client got %x (%v), want a Binding success response", buf[:n], err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per Binding, want 0", a)
	}
}

// FuzzChannelData runs the listener's ChannelData fast path on arbitrary
// datagrams: it relays exactly the ChannelData on a channel the sender has
// bound, with the length it declares, and nothing else.
func FuzzChannelData(f *testing.F) {
	f.Add([]byte{0x40, 0x00, 0, 5, 'h', 'e', 'l', 'l', 'o', 0, 0, 0}, true)
	f.Add([]byte{0x40, 0x00, 0, 0}, true)
	f.Add([]byte{0x40, 0x00, 0, 6, 'h', 'e', 'l', 'l', 'o'}, true) // longer than the datagram
	f.Add([]byte{0x40, 0x01, 0, 1, 'x'}, true)                     // a channel not bound
	f.Add([]byte{0x40, 0x00, 0, 1, 'x'}, false)                    // from someone else
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff}, true)
	s, _, _ := fuzzServer(f)
	listener, relaySock, peer, client, stranger := listenUDP4(f), listenUDP4(f), listenUDP4(f), listenUDP4(f), listenUDP4(f)
	c := newGuardedPacketConn(listener, s)
	r := &relayPacketConn{PacketConn: relaySock, relayBase: relayBase{s: s}, udp: relaySock, turn: c,
		perms: make(map[netip.Addr]struct{})}
	clientAP := client.LocalAddr().(*net.UDPAddr).AddrPort()
	strangerAP := stranger.LocalAddr().(*net.UDPAddr).AddrPort()
	peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	r.setClient(net.UDPAddrFromAddrPort(clientAP))
	r.setChannel(0x4000, net.UDPAddrFromAddrPort(peerAP), true)
	buf := make([]byte, 70000)
	f.Fuzz(func(t *testing.T, b []byte, fromClient bool) {
		if !isChannelData(b) {
			return
		}
		from := strangerAP
		if fromClient {
			from = clientAP
		}
		size := int(b[2])<<8 | int(b[3])
		want := fromClient && b[0] == 0x40 && b[1] == 0x00 && 4+size <= len(b)
		if got := c.relayChannelData(b, from); got != want {
			t.Fatalf("relayChannelData(%x) from the client %v = %v, want %v", b, fromClient, got, want)
		}
		if !want {
			return
		}
		_ = peer.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || !bytes.Equal(buf[:n], b[4:4+size]) {
			t.Fatalf("peer got %x (%v), want %x", buf[:n], err, b[4:4+size])
		}
	})
}
