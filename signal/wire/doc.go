// Package wire implements the messages of the WebTorrent WebSocket tracker
// protocol as bittorrent-tracker 9.19 and browsers speak it: one JSON object
// per WebSocket text frame, with 20-byte values (info_hash, peer_id,
// to_peer_id, offer_id) carried as "binary" JSON strings whose code points
// are the bytes 0–255.
//
// Decode reads a client request without reflection; the SDP objects of offers
// and answers are kept as raw JSON and relayed byte for byte. The Append
// functions build the server's messages directly into a byte slice.
//
// The package imports nothing of Box Signal, so clients (the Go Bugout peer,
// the load generator) can share it with the tracker.
package wire
