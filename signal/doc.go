// Package signal implements a WebTorrent-compatible WebSocket tracker: the
// signaling server browsers running Bugout or WebTorrent use to find each
// other and exchange WebRTC offers and answers.
//
// A Server is an http.Handler that upgrades every request to a WebSocket and
// speaks the protocol of bittorrent-tracker 9.19 (see package wire). After the
// upgrade a connection is moved to one of the tracker's epoll event loops, so
// an idle peer costs no goroutine; the WebSocket protocol itself (handshake,
// framing, control frames) is gobwas/ws's low-level API. Swarms are sharded
// by info_hash and each has its own lock; nothing on the message path takes
// a global lock.
//
// A swarm's members are Members: a local WebSocket, or (through the
// federation layer) a peer held by a friend's Box.
package signal
