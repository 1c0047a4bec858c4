package stunturn

import (
	"net"
	"net/netip"
)

// denyReason says why the peer filter refused an address. It is the "reason"
// label of signald_turn_denied_peers_total, so the set is small and fixed.
type denyReason string

// The reasons a peer address is refused.
const (
	reasonNone        denyReason = ""
	reasonUnspecified denyReason = "unspecified" // 0.0.0.0/8, ::
	reasonLoopback    denyReason = "loopback"    // 127.0.0.0/8, ::1
	reasonLinkLocal   denyReason = "link_local"  // 169.254.0.0/16 (cloud metadata), fe80::/10
	reasonMulticast   denyReason = "multicast"   // 224.0.0.0/4, ff00::/8
	reasonPrivate     denyReason = "private"     // RFC 1918, 100.64.0.0/10, fc00::/7, fec0::/10
	reasonReserved    denyReason = "reserved"    // documentation, benchmarking, 240/4, transition forms, non-2000::/3
	reasonSelf        denyReason = "self"        // one of this Box's own addresses
)

// denyReasons lists every denyReason, for metric initialisation and docs.
var denyReasons = []denyReason{reasonUnspecified, reasonLoopback, reasonLinkLocal,
	reasonMulticast, reasonPrivate, reasonReserved, reasonSelf}

type rangeRule struct {
	prefix netip.Prefix
	reason denyReason
}

func rules(reason denyReason, prefixes ...string) []rangeRule {
	r := make([]rangeRule, len(prefixes))
	for i, p := range prefixes {
		r[i] = rangeRule{netip.MustParsePrefix(p), reason}
	}
	return r
}

// hardDeny ranges are refused even when AllowPeers covers them: there is no
// legitimate WebRTC peer there, and they are the classic SSRF targets
// (CVE-2020-26262: 0.0.0.0 and :: reach localhost on Linux).
var hardDeny = concat(
	rules(reasonUnspecified, "0.0.0.0/8", "::/128"),
	rules(reasonLoopback, "127.0.0.0/8", "::1/128"),
	rules(reasonLinkLocal, "169.254.0.0/16", "fe80::/10"),
	rules(reasonMulticast, "224.0.0.0/4", "ff00::/8"),
	rules(reasonReserved, "240.0.0.0/4"), // includes 255.255.255.255
)

// softDeny ranges are refused unless AllowPeers covers the address.
var softDeny = concat(
	rules(reasonPrivate,
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // RFC 1918
		"100.64.0.0/10",          // RFC 6598 carrier-grade NAT
		"fc00::/7", "fec0::/10"), // ULA, deprecated site-local
	rules(reasonReserved,
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"192.88.99.0/24",  // 6to4 relay anycast
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"::/8",            // IPv4-compatible and other reserved forms (after Unmap)
		"64:ff9b::/96",    // NAT64 well-known prefix
		"64:ff9b:1::/48",  // NAT64 local use
		"100::/64",        // discard-only
		"2001::/23",       // IETF protocol assignments, includes Teredo 2001::/32
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4
		"3fff::/20",       // documentation (RFC 9637)
	),
)

func concat(lists ...[]rangeRule) []rangeRule {
	var out []rangeRule
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// peerFilter decides which peer addresses a client may relay to. It is
// immutable after construction and safe for concurrent use.
type peerFilter struct {
	allow         []netip.Prefix
	self          map[netip.Addr]bool
	allowLoopback bool
}

func newPeerFilter(allow []netip.Prefix, self []netip.Addr, allowLoopback bool) *peerFilter {
	f := &peerFilter{self: make(map[netip.Addr]bool), allowLoopback: allowLoopback}
	for _, p := range allow {
		f.allow = append(f.allow, netip.PrefixFrom(p.Addr().Unmap(), bitsUnmapped(p)).Masked())
	}
	for _, a := range self {
		f.self[a.Unmap()] = true
	}
	return f
}

// bitsUnmapped converts a prefix length written against ::ffff:a.b.c.d to its
// IPv4 length, so that AllowPeers entries in either notation behave alike.
func bitsUnmapped(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(p.Bits()-96, 0)
	}
	return p.Bits()
}

// checkIP is checkAddr for a net.IP as pion hands it over.
func (f *peerFilter) checkIP(ip net.IP) denyReason {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return reasonReserved
	}
	return f.checkAddr(a)
}

// checkAddr returns reasonNone when a client may relay to a, or the reason
// it may not. Every address a can stand for is checked: the address itself
// with any IPv4-mapped form removed, and the IPv4 address embedded in it by
// NAT64, 6to4 or the IPv4-compatible form. Each must pass.
func (f *peerFilter) checkAddr(a netip.Addr) denyReason {
	a = a.Unmap().WithZone("")
	if v4, ok := embeddedIPv4(a); ok {
		if r := f.checkOne(v4); r != reasonNone {
			return r
		}
	}
	return f.checkOne(a)
}

func (f *peerFilter) checkOne(a netip.Addr) denyReason {
	for _, r := range hardDeny {
		if r.prefix.Contains(a) {
			if r.reason == reasonLoopback && f.allowLoopback {
				return reasonNone
			}
			return r.reason
		}
	}
	if f.allowed(a) {
		return reasonNone
	}
	if f.self[a] {
		return reasonSelf
	}
	for _, r := range softDeny {
		if r.prefix.Contains(a) {
			return r.reason
		}
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return reasonReserved
	}
	return reasonNone
}

func (f *peerFilter) allowed(a netip.Addr) bool {
	for _, p := range f.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

var (
	nat64WKP  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4Compat  = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 extracts the IPv4 address that an IPv6 transition form
// carries, as coturn's ioa_addr_get_embedded_ipv4 does: NAT64 (last 32 bits),
// 6to4 (bits 16-47) and IPv4-compatible (last 32 bits; not :: or ::1).
// IPv4-mapped addresses are expected to be unmapped already.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64WKP.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case v4Compat.Contains(a):
		if a == netip.IPv6Unspecified() || a == netip.IPv6Loopback() {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return netip.Addr{}, false
}

// localAddrs returns the addresses of this machine's interfaces, which the
// filter treats as the Box's own (hairpin NAT into the home LAN).
func localAddrs() []netip.Addr {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ia := range ifaddrs {
		if n, ok := ia.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out
}
