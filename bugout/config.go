package bugout

import (
	"io"
	"log/slog"
	"time"
)

// Config configures a Peer. A zero field means the default shown.
type Config struct {
	// Identity signs every packet. Default: a new random identity (from
	// Rand), so the address changes on every run.
	Identity *Identity
	// Identifier is the room. Default: the identity's own address, which
	// makes this peer the room's "server" (§1). At most MaxIdentifierBytes.
	Identifier string
	// Private selects the torrentOpts {private:true} infoHash (§2).
	Private bool

	// Logger gets lifecycle at Info and every refused input at Debug.
	// Default: slog.Default(). Keys never reach it.
	Logger *slog.Logger
	// Clock is the packet clock (t, time window). Default: time.Now.
	// Timers (heartbeat, timeouts) always run on real time.
	Clock func() time.Time
	// Rand supplies the ephemeral box key, packet and RPC nonces and the
	// peer id. Default: crypto/rand.
	Rand io.Reader

	// Timeout is Bugout's packet lifetime: packets older are dropped and a
	// peer silent this long is new again when heard from. Default 5 min,
	// as Bugout.
	Timeout time.Duration
	// MaxClockSkew is how far in the future a packet's t may be. Default 3 min.
	MaxClockSkew time.Duration
	// Heartbeat is how often this peer broadcasts a ping. Default 15 s
	// (half of Bugout's default heartbeat interval, §4.8); negative: never.
	Heartbeat time.Duration
	// PeerTimeout: a peer silent this long is dropped with "timeout" and
	// "left" events. Default: Timeout. Bugout peers without a heartbeat only
	// ping when they first see someone, so a short value makes them flap.
	PeerTimeout time.Duration

	// MaxPacketBytes is the largest bo_channel payload accepted or sent.
	// Default 64 KiB; a browser data channel dies at 256 KiB (B12).
	MaxPacketBytes int
	// MaxPeers bounds the peer table; packets from new addresses beyond it
	// are refused. Default 1024.
	MaxPeers int
	// WirePacketRate and WirePacketBurst limit bo_channel payloads per wire
	// (per second). Default 200/s, burst 400.
	WirePacketRate  float64
	WirePacketBurst int
	// PeerPacketRate and PeerPacketBurst limit authenticated packets per
	// sender address. Default 50/s, burst 100.
	PeerPacketRate  float64
	PeerPacketBurst int
	// RPCRate and RPCBurst limit RPC calls served per caller. Default 5/s,
	// burst 20.
	RPCRate  float64
	RPCBurst int
	// MaxConcurrentRPC bounds handlers running at once; calls beyond it get
	// {"error":"busy"}. Default 32.
	MaxConcurrentRPC int
	// RPCTimeout bounds Call when its context has no deadline, and each
	// handler. Default 30 s.
	RPCTimeout time.Duration

	// HandshakeTimeout: a wire whose BitTorrent handshake has not arrived
	// by then is closed. Default 25 s, as webtorrent.
	HandshakeTimeout time.Duration
	// KeepAlive: a wire idle this long gets a keep-alive. Default 55 s, as
	// webtorrent.
	KeepAlive time.Duration
	// WireQueue is each wire's outgoing queue, in messages; beyond it
	// messages to that wire are dropped. Default 256.
	WireQueue int
	// EventBuffer is the Events channel's buffer; when full, events are
	// dropped and counted. Default 1024.
	EventBuffer int
	// CloseTimeout bounds how long Close waits for wires to flush the
	// leave packet. Default 2 s.
	CloseTimeout time.Duration
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defRate := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	def(&c.Timeout, 5*time.Minute)
	def(&c.MaxClockSkew, 3*time.Minute)
	def(&c.Heartbeat, 15*time.Second)
	def(&c.PeerTimeout, c.Timeout)
	defInt(&c.MaxPacketBytes, 64<<10)
	defInt(&c.MaxPeers, 1024)
	defRate(&c.WirePacketRate, 200)
	defInt(&c.WirePacketBurst, 400)
	defRate(&c.PeerPacketRate, 50)
	defInt(&c.PeerPacketBurst, 100)
	defRate(&c.RPCRate, 5)
	defInt(&c.RPCBurst, 20)
	defInt(&c.MaxConcurrentRPC, 32)
	def(&c.RPCTimeout, 30*time.Second)
	def(&c.HandshakeTimeout, 25*time.Second)
	def(&c.KeepAlive, 55*time.Second)
	defInt(&c.WireQueue, 256)
	defInt(&c.EventBuffer, 1024)
	def(&c.CloseTimeout, 2*time.Second)
}
