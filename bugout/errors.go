package bugout

import (
	"errors"
	"fmt"
)

// Reasons a received payload is refused. Each error below is the sentinel
// that a refusal wraps (test with errors.Is); ReasonOf gives its short name
// for logs and counters.
var (
	ErrTooLarge           = errors.New("bugout: packet too large")
	ErrMalformed          = errors.New("bugout: malformed packet")
	ErrBadKey             = errors.New("bugout: bad key")
	ErrBadSignature       = errors.New("bugout: bad signature")
	ErrWrongRoom          = errors.New("bugout: wrong room")
	ErrExpired            = errors.New("bugout: packet expired")
	ErrFromFuture         = errors.New("bugout: packet from the future")
	ErrReplay             = errors.New("bugout: replayed packet")
	ErrRateLimited        = errors.New("bugout: rate limited")
	ErrTooManyPeers       = errors.New("bugout: peer table full")
	ErrPlaintextRPC       = errors.New("bugout: rpc call not encrypted")
	ErrUnexpectedResponse = errors.New("bugout: unexpected rpc response")
	ErrUndecryptable      = errors.New("bugout: envelope decrypts but is not a signed packet")
)

// Reason is a short, fixed name for a refusal, fit for a metric label.
type Reason string

var reasons = []struct {
	err    error
	reason Reason
}{
	{ErrTooLarge, "too_large"},
	{ErrMalformed, "malformed"},
	{ErrBadKey, "bad_key"},
	{ErrBadSignature, "bad_signature"},
	{ErrWrongRoom, "wrong_room"},
	{ErrExpired, "expired"},
	{ErrFromFuture, "future"},
	{ErrReplay, "replay"},
	{ErrRateLimited, "rate_limited"},
	{ErrTooManyPeers, "too_many_peers"},
	{ErrPlaintextRPC, "plaintext_rpc"},
	{ErrUnexpectedResponse, "unexpected_response"},
	{ErrUndecryptable, "undecryptable"},
}

// ReasonOf names the refusal err wraps, or "other".
func ReasonOf(err error) Reason {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "other"
}

// reject wraps a sentinel with what was wrong.
func reject(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}

// Errors of the API.
var (
	// ErrUnknownPeer: SendTo or Call to an address not in the peer table,
	// so without a key to encrypt to (Bugout's "not seen - no public key").
	ErrUnknownPeer = errors.New("bugout: peer not seen, no public key")
	// ErrFalsyMessage: Bugout peers drop null, false, 0 and "" (§4.9).
	ErrFalsyMessage = errors.New("bugout: message is falsy JSON, Bugout peers drop it")
	// ErrClosed: the Peer is closed.
	ErrClosed = errors.New("bugout: peer closed")
	// ErrRPCTimeout: no response within the call's timeout.
	ErrRPCTimeout = errors.New("bugout: rpc timed out")
	// ErrDuplicateWire: a wire with the same remote peer id is up already.
	ErrDuplicateWire = errors.New("bugout: already have a wire with this peer id")
	// ErrWrongInfoHash: the remote handshake is for another torrent.
	ErrWrongInfoHash = errors.New("bugout: handshake for another infoHash")
	// ErrHandshakeTimeout: no BitTorrent handshake within HandshakeTimeout.
	ErrHandshakeTimeout = errors.New("bugout: no handshake in time")
	// ErrSelfConnection: the remote handshake carries our own peer id.
	ErrSelfConnection = errors.New("bugout: connected to ourselves")
)
