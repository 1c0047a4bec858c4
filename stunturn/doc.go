// Package stunturn implements the Box's STUN/TURN server, so that browsers
// behind NATs that defeat direct WebRTC connections can still reach each
// other through the Box.
//
// It is pion/turn v5 with what a server exposed to the Internet needs on top:
// a peer filter that refuses loopback, private, link-local, metadata and
// other internal addresses in every IPv4-in-IPv6 disguise (see
// docs/turn.md), TURN REST credentials with secret rotation, per-user and
// total allocation quotas, permission and channel caps, bandwidth limits,
// a per-IP limit on unauthenticated requests, several SO_REUSEPORT sockets
// per UDP port, and Prometheus metrics. On UDP it answers STUN Binding
// requests and relays ChannelData itself, without allocating and (on Linux)
// a batch of datagrams per system call, and leaves the rest to pion.
// NewICEHandler serves the matching RTCPeerConnection iceServers with fresh
// credentials.
package stunturn
