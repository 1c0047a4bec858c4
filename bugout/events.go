package bugout

import "encoding/json"

// EventType names an event; the values are Bugout's event names.
type EventType string

// Events a Peer reports (§4.7).
const (
	// EventSeen: a peer was first heard of, or heard again after PeerTimeout
	// of silence.
	EventSeen EventType = "seen"
	// EventServer: the seen peer's address is the room identifier.
	EventServer EventType = "server"
	// EventLeft: a peer sent leave, or timed out (then EventTimeout comes first).
	EventLeft EventType = "left"
	// EventTimeout: a peer was silent for PeerTimeout.
	EventTimeout EventType = "timeout"
	// EventPing: a peer's signed ping.
	EventPing EventType = "ping"
	// EventMessage: a broadcast or (Encrypted) direct message.
	EventMessage EventType = "message"
	// EventRPC: a call to one of our handlers (before it runs).
	EventRPC EventType = "rpc"
	// EventRPCResponse: the response to one of our calls.
	EventRPCResponse EventType = "rpc-response"
	// EventWireSeen: a wire finished its handshakes and speaks bo_channel.
	EventWireSeen EventType = "wireseen"
	// EventWireLeft: a wire closed. Bugout emits no "left" for this (§4.7).
	EventWireLeft EventType = "wireleft"
)

// Event is something that happened in the room. Fields not used by a type
// are zero.
type Event struct {
	Type    EventType
	Address Address // the peer concerned (not set for wire events)

	// Message (EventMessage), Args (EventRPC) and Result (EventRPCResponse)
	// are the JSON the peer sent.
	Message json.RawMessage
	Args    json.RawMessage
	Result  json.RawMessage
	// Encrypted: the message came in an encrypted envelope, i.e. a DM.
	Encrypted bool
	// Call is the RPC name (EventRPC); Nonce the hex rn (EventRPC,
	// EventRPCResponse).
	Call  string
	Nonce string
	// Wires is the number of wires after a wire event.
	Wires int
}
