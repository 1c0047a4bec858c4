// Package bugout implements a Bugout (npm bugout@0.0.13) peer: identities,
// rooms, signed and encrypted packets, gossip, the peer table, RPC and the
// BitTorrent peer wire that carries it all, so that a Go program can join a
// room and talk to unmodified Bugout peers.
//
// The package is transport independent. A Peer runs the BitTorrent wire over
// any byte stream handed to AddWire: a TCP connection, a net.Pipe in tests,
// or (in the transport layer above this package) a WebRTC data channel.
// shared/specs/bugout-wire.md is the protocol this code follows; comments
// cite its sections as §N.
//
// Box Signal hardening that stays wire compatible with Bugout:
//   - packets are refused outside a time window (older than Timeout or more
//     than MaxClockSkew in the future) and a signed packet's nonce n is
//     accepted once per sender within that window (B5);
//   - payloads over MaxPacketBytes are refused and never re-sent (B12);
//   - per-wire and per-address rate limits on packets and RPC calls (B6);
//   - every malformed input is rejected with a typed *RejectError, logged at
//     Debug, and never panics (B7);
//   - the unsigned pk/ek of a BEP 10 handshake never replace the key of a
//     peer already known from a fresh signed packet (B4);
//   - RPC calls are served only when they arrive encrypted to us, and a
//     response is accepted only from the peer that was called (B5).
//
// Gossip (§4.6): a first-seen payload that passes every check is re-sent
// byte for byte to every other wire. An encrypted envelope that is well
// formed but not for us is also re-sent, since that flood is how DMs and RPCs
// reach peers without a direct wire. Anything refused (malformed, forged,
// wrong room, expired, replayed, oversized, rate limited) is not re-sent:
// a JS peer throws or drops on it anyway (§4.11), so forwarding it would only
// spread the damage. Own outgoing payloads are recorded as seen, so echoes
// from neighbours are dropped without processing.
package bugout
