// Package transport connects a [bugout.Peer] to its room the way Bugout's
// browsers do: it announces the room's infoHash to WebTorrent WebSocket
// trackers, meets other peers through the offers and answers they relay,
// and hands each WebRTC data channel to [bugout.Peer.AddWire] as a byte
// stream (bugout-wire.md §3).
//
// One [Transport] keeps one WebSocket per tracker URL, shared by every room
// it has joined; [Join] is the one-room shorthand. Signalling is
// non-trickle (the SDP carries every candidate), each connection has one
// ordered, reliable data channel, and no STUN or TURN server is used unless
// configured: give ICEServers, or the /ice URL of a Box.
package transport
