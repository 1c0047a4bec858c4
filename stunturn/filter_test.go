package stunturn

import (
	"net"
	"net/netip"
	"testing"
)

func TestFilterReasons(t *testing.T) {
	self := []netip.Addr{netip.MustParseAddr("11.22.33.44"), netip.MustParseAddr("2a00:1450::44")}
	f := newPeerFilter(nil, self, false)
	for _, tc := range []struct {
		addr string
		want denyReason
	}{
		{"127.0.0.1", reasonLoopback},
		{"::1", reasonLoopback},
		{"::ffff:127.0.0.1", reasonLoopback},
		{"::127.0.0.1", reasonLoopback},
		{"64:ff9b::7f00:1", reasonLoopback},
		{"2002:7f00:1::", reasonLoopback},
		{"0.0.0.0", reasonUnspecified},
		{"0.255.255.255", reasonUnspecified},
		{"::", reasonUnspecified},
		{"::ffff:0.0.0.0", reasonUnspecified},
		{"64:ff9b::", reasonUnspecified},
		{"169.254.169.254", reasonLinkLocal},
		{"::ffff:169.254.169.254", reasonLinkLocal},
		{"fe80::1", reasonLinkLocal},
		{"fe80::1%eth0", reasonLinkLocal},
		{"10.0.0.1", reasonPrivate},
		{"172.16.5.4", reasonPrivate},
		{"192.168.1.1", reasonPrivate},
		{"100.64.0.1", reasonPrivate},
		{"fc00::1", reasonPrivate},
		{"fd00::2", reasonPrivate},
		{"fec0::1", reasonPrivate},
		{"2002:c0a8:101::1", reasonPrivate},
		{"224.0.0.251", reasonMulticast},
		{"ff02::fb", reasonMulticast},
		{"255.255.255.255", reasonReserved},
		{"240.0.0.1", reasonReserved},
		{"192.0.2.1", reasonReserved},
		{"198.51.100.7", reasonReserved},
		{"203.0.113.9", reasonReserved},
		{"198.18.0.1", reasonReserved},
		{"192.88.99.1", reasonReserved},
		{"2001:db8::1", reasonReserved},
		{"2001::1", reasonReserved},
		{"2002:808:808::1", reasonReserved}, // 6to4 of a public address: still refused
		{"64:ff9b::808:808", reasonReserved},
		{"64:ff9b:1::1", reasonReserved},
		{"::808:808", reasonReserved},
		{"100::1", reasonReserved},
		{"4000::1", reasonReserved}, // outside 2000::/3
		{"11.22.33.44", reasonSelf},
		{"::ffff:11.22.33.44", reasonSelf},
		{"2a00:1450::44", reasonSelf},
		{"8.8.8.8", reasonNone},
		{"::ffff:8.8.8.8", reasonNone},
		{"1.1.1.1", reasonNone},
		{"11.22.33.45", reasonNone},
		{"2a00:1450:4001::1", reasonNone},
		{"2606:4700::1111", reasonNone},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := f.checkAddr(a); got != tc.want {
			t.Errorf("checkAddr(%s) = %q, want %q", tc.addr, got, tc.want)
		}
		if a.Zone() == "" {
			if got := f.checkIP(net.IP(a.AsSlice())); got != tc.want {
				t.Errorf("checkIP(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		}
	}
	if got := f.checkIP(net.IP{1, 2, 3}); got != reasonReserved {
		t.Errorf("checkIP(3 bytes) = %q, want reserved", got)
	}
}

func TestFilterAllowPeers(t *testing.T) {
	f := newPeerFilter([]netip.Prefix{
		netip.MustParsePrefix("192.168.1.0/24"),
		netip.MustParsePrefix("::ffff:10.0.0.0/104"), // written mapped: 10.0.0.0/8
		netip.MustParsePrefix("fd00:1::/64"),
		netip.MustParsePrefix("127.0.0.0/8"),    // cannot open loopback
		netip.MustParsePrefix("169.254.0.0/16"), // nor link-local
		netip.MustParsePrefix("0.0.0.0/0"),      // nor anything hard-denied
	}, []netip.Addr{netip.MustParseAddr("192.168.1.10")}, false)
	for _, tc := range []struct {
		addr string
		want denyReason
	}{
		{"192.168.1.20", reasonNone},
		{"::ffff:192.168.1.20", reasonNone},
		{"192.168.1.10", reasonNone}, // an allowed own address
		{"10.9.8.7", reasonNone},
		{"fd00:1::5", reasonNone},
		{"fd00:2::5", reasonPrivate},
		{"2002:c0a8:114::1", reasonReserved}, // embedded 192.168.1.20 is allowed, 6to4 itself is not
		{"127.0.0.1", reasonLoopback},
		{"169.254.169.254", reasonLinkLocal},
		{"0.0.0.0", reasonUnspecified},
		{"224.0.0.1", reasonMulticast},
		{"172.16.0.1", reasonNone}, // 0.0.0.0/0 opened every soft range
	} {
		if got := f.checkAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("checkAddr(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestFilterAllowLoopbackForTests(t *testing.T) {
	f := newPeerFilter(nil, nil, true)
	for _, a := range []string{"127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"} {
		if got := f.checkAddr(netip.MustParseAddr(a)); got != reasonNone {
			t.Errorf("with AllowLoopbackForTests, checkAddr(%s) = %q", a, got)
		}
	}
	if got := f.checkAddr(netip.MustParseAddr("0.0.0.0")); got != reasonUnspecified {
		t.Errorf("with AllowLoopbackForTests, checkAddr(0.0.0.0) = %q, want unspecified", got)
	}
}

// FuzzFilter checks that no IPv6 spelling of an IPv4 address is treated more
// leniently than the address itself.
func FuzzFilter(f *testing.F) {
	for _, a := range denyTable {
		f.Add(netip.MustParseAddr(a).AsSlice())
	}
	f.Add([]byte{8, 8, 8, 8})
	filter := newPeerFilter(nil, []netip.Addr{netip.MustParseAddr("11.22.33.44")}, false)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			_ = filter.checkIP(b)
			return
		}
		r := filter.checkAddr(a)
		if !a.Unmap().Is4() {
			return
		}
		v4 := a.Unmap().As4()
		var b16 [16]byte
		mapped := netip.AddrFrom16(netip.AddrFrom4(v4).As16())
		copy(b16[:], netip.MustParseAddr("64:ff9b::").AsSlice())
		copy(b16[12:], v4[:])
		nat64 := netip.AddrFrom16(b16)
		b16 = [16]byte{0x20, 0x02, v4[0], v4[1], v4[2], v4[3]}
		sixto4 := netip.AddrFrom16(b16)
		b16 = [16]byte{}
		copy(b16[12:], v4[:])
		compat := netip.AddrFrom16(b16)
		for _, alias := range []netip.Addr{mapped, nat64, sixto4, compat} {
			if r != reasonNone && filter.checkAddr(alias) == reasonNone {
				t.Errorf("%v is refused (%s) but its alias %v is allowed", a, r, alias)
			}
		}
	})
}
