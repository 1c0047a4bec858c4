package signal

import "github.com/boxsignal/boxsignal/signal/wire"

// A Member is where a swarm sends what is addressed to one of its peers: a
// local WebSocket, or a peer that a friend's Box holds (the federation layer
// implements Member for those). The swarm never writes to a socket itself.
//
// Deliver methods are called without any swarm lock held, from many
// goroutines at once. They must not block: a member that cannot take a
// message now drops it and returns false. The sdp slice is valid only during
// the call.
type Member interface {
	DeliverOffer(infoHash, from, offerID *wire.Hash, sdp []byte) bool
	DeliverAnswer(infoHash, from, offerID *wire.Hash, sdp []byte) bool
}
