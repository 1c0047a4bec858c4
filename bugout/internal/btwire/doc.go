// Package btwire is the part of the BitTorrent peer wire that a Bugout peer
// speaks (spec §3.3): the 68-byte handshake, length-prefixed messages read
// from a byte stream whose chunking means nothing, and the BEP 10 extended
// handshake. It knows nothing about Bugout packets.
package btwire
