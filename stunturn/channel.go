package stunturn

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// The ChannelData fast path. ChannelData is the bulk of a TURN server's
// traffic, and pion relays each datagram with a handful of allocations
// (addresses, log arguments, a new frame per datagram towards the client).
// So for UDP clients this package relays ChannelData itself, both ways,
// from a mirror of pion's channel bindings that pion's events keep:
//
//   - client → peer: the listener (guardedPacketConn.ReadFrom) finds the
//     allocation by the client's address and the peer by channel number,
//     and sends the data from the relay socket (relayPacketConn.writeToPeer,
//     with the bandwidth caps and metrics of every relayed datagram);
//   - peer → client: whoever reads the relay socket (the listener's
//     relayPoller, or relayPacketConn.ReadFrom in pion's goroutine for the
//     allocation) puts the ChannelData header in front of the datagram in
//     place and sends it from the listener (relayPacketConn.fromPeer).
//
// Only what pion would relay is relayed: a channel exists in the mirror
// from pion's OnChannelCreated (after the guard and pion's
// PermissionHandler accepted the peer) to its OnChannelDeleted (expiry, or
// the allocation's end). Everything else (Send and Data indications,
// unknown channels, TCP and TLS clients) goes to pion as before.

// channels is an allocation's channel bindings, both ways. Guarded by the
// relayPacketConn's mu.
type channels struct {
	peer   map[uint16]netip.AddrPort // by channel number
	number map[netip.AddrPort]uint16 // by peer
}

// peerKey is how the mirror spells a peer's transport address, so that the
// forms pion treats as equal (IPv4 and IPv4-mapped, any zone) are one key.
func peerKey(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
}

func udpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return u.AddrPort(), true
}

// relayChannelData relays the ChannelData b from the client at from, and
// reports whether it did. When it did not, pion gets the datagram.
func (c *guardedPacketConn) relayChannelData(b []byte, from netip.AddrPort) bool {
	number := binary.BigEndian.Uint16(b[0:2])
	size := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+size > len(b) {
		return false // pion drops it as malformed
	}
	c.mu.RLock()
	r := c.allocs[from]
	c.mu.RUnlock()
	if r == nil {
		return false
	}
	peer, ok := r.channelPeer(number)
	if !ok {
		return false
	}
	_, _ = r.writeToPeer(b[4:4+size], peer)
	return true
}

func (c *guardedPacketConn) addAlloc(client netip.AddrPort, r *relayPacketConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.allocs[client] = r
}

func (c *guardedPacketConn) removeAlloc(client netip.AddrPort, r *relayPacketConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.allocs[client] == r {
		delete(c.allocs, client)
	}
}

// setClient records the client of the UDP relay r, when pion reports the
// allocation, and enables its fast path.
func (r *relayPacketConn) setClient(client net.Addr) {
	ap, ok := udpAddrPort(client)
	if !ok || r.turn == nil {
		return // a TCP or TLS client: pion relays
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.client = ap
	r.mu.Unlock()
	r.turn.addAlloc(ap, r)
}

// setChannel mirrors pion's OnChannelCreated (ok) and OnChannelDeleted.
func (r *relayPacketConn) setChannel(number uint16, peer net.Addr, ok bool) {
	ap, isUDP := udpAddrPort(peer)
	if !isUDP {
		return
	}
	ap = peerKey(ap)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		if r.chans.peer == nil {
			r.chans = channels{peer: make(map[uint16]netip.AddrPort), number: make(map[netip.AddrPort]uint16)}
		}
		r.chans.peer[number] = ap
		r.chans.number[ap] = number
		return
	}
	if r.chans.peer[number] == ap {
		delete(r.chans.peer, number)
		delete(r.chans.number, ap)
	}
}

func (r *relayPacketConn) channelPeer(number uint16) (netip.AddrPort, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	peer, ok := r.chans.peer[number]
	return peer, ok
}

// route says what to do with a datagram from peer: drop it (no
// permission), relay it as ChannelData on channel to client, or (channel
// 0) hand it to pion, which sends a Data indication.
func (r *relayPacketConn) route(peer netip.AddrPort) (permitted bool, channel uint16, client netip.AddrPort) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.perms[peer.Addr()]; !ok {
		return false, 0, client
	}
	if !r.client.IsValid() {
		return true, 0, client
	}
	return true, r.chans.number[peer], r.client
}

// channelDataFrame writes the ChannelData header for the n payload bytes at
// frame[4:] into frame[:4] and zeroes the padding after them, as pion's
// proto.ChannelData.Encode does (it pads on UDP too), and returns the frame.
// frame must have room for the padding.
func channelDataFrame(frame []byte, channel uint16, n int) []byte {
	binary.BigEndian.PutUint16(frame[0:2], channel)
	binary.BigEndian.PutUint16(frame[2:4], uint16(n))
	end := 4 + (n+3)&^3
	clear(frame[4+n : end])
	return frame[:end]
}
