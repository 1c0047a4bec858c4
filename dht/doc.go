// Package dht federates Box trackers: it relays WebTorrent offers and
// answers between friends' Boxes, and finds Boxes with peers in a room
// through a Kademlia DHT of Boxes when friends have none.
//
// Each Box is a go-libp2p host with a persistent Ed25519 identity. Friends
// (a mutual allowlist, see ParseFriends) keep connections open and exchange
// room interest by RoomKey, a hash of the info_hash, so a friend learns the
// info_hash of a room only when it has peers in it too. A Node implements
// signal.Federation: the offers of a local announce that no local peer took
// go to Boxes with peers in that room, each to one Box, and answers come
// back only from the Box an offer went to. An offer crosses one Box
// boundary at most (hop limit 1), and peer and offer IDs are never
// rewritten. The relay protocol is /boxsignal/relay/1.0.0 (relay.proto).
package dht
