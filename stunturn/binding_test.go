package stunturn

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// pionBindingSuccess is the response pion/turn v5 builds for a Binding
// request (internal/server/stun.go, handleBindingRequest), for comparison.
func pionBindingSuccess(t testing.TB, tid [12]byte, from netip.AddrPort) []byte {
	t.Helper()
	u := net.UDPAddrFromAddrPort(from)
	m, err := stun.Build(&stun.Message{TransactionID: tid}, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: u.IP, Port: u.Port}, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

var bindingClients = []netip.AddrPort{
	netip.MustParseAddrPort("127.0.0.1:40000"),
	netip.MustParseAddrPort("203.0.113.7:1"),
	netip.MustParseAddrPort("[::ffff:198.51.100.1]:65535"), // from a dual-stack socket
	netip.MustParseAddrPort("[::1]:3478"),
	netip.MustParseAddrPort("[2001:db8::1234:5678]:54321"),
	netip.MustParseAddrPort("[fe80::1%eth0]:9"),
}

// TestBindingResponseBytes: the fast path's answer is byte for byte pion's.
func TestBindingResponseBytes(t *testing.T) {
	for i, from := range bindingClients {
		var tid [12]byte
		for j := range tid {
			tid[j] = byte(i*31 + j*7)
		}
		got := appendBindingSuccess(nil, tid, from)
		want := pionBindingSuccess(t, tid, from)
		if !bytes.Equal(got, want) {
			t.Errorf("appendBindingSuccess(%v) =\n%x\nwant (pion)\n%x", from, got, want)
		}
		if len(got) > bindingResponseMax {
			t.Errorf("response for %v is %d bytes, more than bindingResponseMax %d", from, len(got), bindingResponseMax)
		}
		// What a client reads from it.
		m := &stun.Message{Raw: got}
		if err := m.Decode(); err != nil {
			t.Fatalf("decode response: %v", err)
		}
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(m); err != nil {
			t.Fatalf("XOR-MAPPED-ADDRESS: %v", err)
		}
		if a, _ := netip.AddrFromSlice(xa.IP); a != from.Addr().Unmap().WithZone("") || xa.Port != int(from.Port()) {
			t.Errorf("XOR-MAPPED-ADDRESS = %v, want %v", xa, from)
		}
		if err := stun.Fingerprint.Check(m); err != nil {
			t.Errorf("FINGERPRINT: %v", err)
		}
	}
}

func bindingRequest(tid [12]byte, attrs ...attr) []byte {
	m := &stun.Message{TransactionID: tid}
	m.Type = stun.BindingRequest
	m.WriteHeader()
	for _, a := range attrs {
		m.Add(a.typ, a.val)
	}
	return m.Raw
}

func TestParseBindingRequest(t *testing.T) {
	tid := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	plain := bindingRequest(tid)
	withFingerprint := stun.MustBuild(&stun.Message{TransactionID: tid}, stun.BindingRequest,
		stun.NewSoftware("test"), stun.Fingerprint).Raw
	allocate := bindingRequest(tid)
	binary.BigEndian.PutUint16(allocate[0:2], 0x0003)
	highBits := bindingRequest(tid)
	highBits[0] |= 0xC0
	overrun := bindingRequest(tid, attr{0x8022, []byte("abcd")})
	binary.BigEndian.PutUint16(overrun[22:24], 8) // value runs past the message
	badCookie := bindingRequest(tid)
	badCookie[4] ^= 1
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"plain", plain, true},
		{"software and fingerprint", withFingerprint, true},
		{"optional attribute of odd length", bindingRequest(tid, attr{0x8022, []byte("abc")}), true},
		{"empty optional attribute", bindingRequest(tid, attr{0xC001, nil}), true},
		{"old XOR-MAPPED-ADDRESS type 0x8020", bindingRequest(tid, attr{0x8020, make([]byte, 8)}), true},
		// Comprehension-required attributes go to pion: it may answer 420.
		{"CHANGE-REQUEST", bindingRequest(tid, attr{0x0003, []byte{0, 0, 0, 6}}), false},
		{"unknown required", bindingRequest(tid, attr{0x7FFF, nil}), false},
		{"USERNAME", bindingRequest(tid, attr{stun.AttrUsername, []byte("a:b")}), false},
		{"short", plain[:19], false},
		{"trailing byte", append(bytes.Clone(plain), 0), false},
		{"length too long", append(bytes.Clone(plain[:2]), append([]byte{0, 4}, plain[4:]...)...), false},
		{"attribute past the end", overrun, false},
		{"not a request", stun.MustBuild(stun.TransactionID, stun.BindingSuccess).Raw, false},
		{"Allocate", allocate, false},
		{"type bits pion ignores", highBits, false},
		{"bad cookie", badCookie, false},
		{"ChannelData", []byte{0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false},
	} {
		got, ok := parseBindingRequest(tc.b)
		if ok != tc.ok {
			t.Errorf("%s: parseBindingRequest(%x) = %v, want %v", tc.name, tc.b, ok, tc.ok)
		}
		if ok && got != tid {
			t.Errorf("%s: transaction ID %x, want %x", tc.name, got, tid)
		}
	}
}

// TestBindingFastPathAllocs: recognising a request and building the answer
// allocate nothing.
func TestBindingFastPathAllocs(t *testing.T) {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.NewSoftware("x"), stun.Fingerprint).Raw
	from := netip.MustParseAddrPort("[2001:db8::1]:5000")
	var sink byte
	allocs := testing.AllocsPerRun(1000, func() {
		var buf [bindingResponseMax]byte
		tid, ok := parseBindingRequest(req)
		if !ok {
			t.Fatal("request not recognised")
		}
		sink ^= appendBindingSuccess(buf[:0], tid, from)[0]
	})
	if allocs != 0 {
		t.Errorf("Binding fast path: %v allocations per request, want 0", allocs)
	}
}

// FuzzBindingRequest checks the recogniser against pion/stun's decoder on
// arbitrary datagrams: whatever it accepts, pion would have answered with a
// success (a Binding request that decodes, with no comprehension-required
// attribute), and the answer is pion's, byte for byte.
func FuzzBindingRequest(f *testing.F) {
	for _, b := range seedFrames(f) {
		f.Add(b)
	}
	tid := [12]byte{9, 8, 7}
	f.Add(bindingRequest(tid))
	f.Add(stun.MustBuild(&stun.Message{TransactionID: tid}, stun.BindingRequest, stun.NewSoftware("s"), stun.Fingerprint).Raw)
	f.Add(bindingRequest(tid, attr{0x0003, []byte{0, 0, 0, 6}}))
	f.Add(bindingRequest(tid, attr{0x8022, []byte("abc")}))
	from := netip.MustParseAddrPort("198.51.100.9:7000")
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseBindingRequest(b)
		m := &stun.Message{Raw: append([]byte(nil), b...)}
		decoded := m.Decode() == nil
		// pion/turn answers success unless an attribute is
		// comprehension-required and unknown (handleTURNPacket).
		pionSuccess := decoded && m.Type == stun.BindingRequest
		for _, a := range m.Attributes {
			if a.Type.Required() && !a.Type.Known() {
				pionSuccess = false
			}
		}
		if !ok {
			if pionSuccess && binary.BigEndian.Uint16(b[0:2]) == typeBindingRequest &&
				len(b) == stunHeaderSize+int(m.Length) && onlyOptional(b) {
				t.Fatalf("refused %x, a Binding request with only optional attributes", b)
			}
			return
		}
		if !pionSuccess {
			t.Fatalf("accepted %x, which pion would not answer with success (decoded %v, type %v, attributes %v)",
				b, decoded, m.Type, m.Attributes)
		}
		if got != m.TransactionID {
			t.Fatalf("transaction ID %x, want %x", got, m.TransactionID)
		}
		if resp, want := appendBindingSuccess(nil, got, from), pionBindingSuccess(t, got, from); !bytes.Equal(resp, want) {
			t.Fatalf("response %x, want %x", resp, want)
		}
	})
}

// onlyOptional reports whether every attribute of the STUN message b, which
// pion/stun decoded, has a comprehension-optional type as sent.
func onlyOptional(b []byte) bool {
	for a := b[stunHeaderSize:]; len(a) >= 4; {
		if binary.BigEndian.Uint16(a[0:2]) < 0x8000 {
			return false
		}
		padded := (int(binary.BigEndian.Uint16(a[2:4])) + 3) &^ 3
		if len(a)-4 < padded {
			return false
		}
		a = a[4+padded:]
	}
	return true
}

// TestBindingOnTheWire sends Binding requests to a running server over UDP,
// IPv4 and IPv6, and compares the answers with pion's bytes; a request with
// a comprehension-required attribute pion does not know still gets pion's
// 420, and one with SOFTWARE and FINGERPRINT (as browsers send) a success.
func TestBindingOnTheWire(t *testing.T) {
	s := newTestServer(t, Config{ListenUDP: []string{"127.0.0.1:0", "[::1]:0"}})
	for _, server := range s.Addrs().UDP {
		t.Run(server.String(), func(t *testing.T) {
			c, err := net.Dial("udp", server.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			local := c.LocalAddr().(*net.UDPAddr).AddrPort()
			exchange := func(req []byte) []byte {
				t.Helper()
				if _, err := c.Write(req); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 1500)
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("no answer to %x: %v", req, err)
				}
				return buf[:n]
			}
			for _, req := range [][]byte{
				bindingRequest([12]byte{1, 2, 3}),
				stun.MustBuild(&stun.Message{TransactionID: [12]byte{2}}, stun.BindingRequest,
					stun.NewSoftware("browser"), stun.Fingerprint).Raw,
			} {
				m := &stun.Message{Raw: req}
				_ = m.Decode()
				if got, want := exchange(req), pionBindingSuccess(t, m.TransactionID, local); !bytes.Equal(got, want) {
					t.Errorf("answer to %x:\n%x\nwant\n%x", req, got, want)
				}
			}
			resp := &stun.Message{Raw: exchange(bindingRequest([12]byte{3}, attr{0x7FF0, []byte{1, 2, 3, 4}}))}
			if err := resp.Decode(); err != nil || resp.Type != stun.NewType(stun.MethodBinding, stun.ClassErrorResponse) || errCode(resp) != 420 {
				t.Errorf("unknown required attribute: got %v (code %d, %v), want 420", resp.Type, errCode(resp), err)
			}
		})
	}
}
