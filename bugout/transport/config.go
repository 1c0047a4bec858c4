package transport

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/pion/transport/v5"
)

// Config configures a Transport. A zero field means the default shown.
type Config struct {
	// Trackers are the ws:// or wss:// WebTorrent trackers to announce to.
	// Peers meet only through a tracker they share. Required.
	Trackers []string
	// ICEServers are the STUN/TURN servers for every PeerConnection.
	// Default: none, so only host candidates are offered; nobody else's
	// STUN server is ever contacted unless listed here.
	ICEServers []ICEServer
	// ICEURL is a Box's /ice URL, answering {"iceServers":[…],"ttl":N}. When
	// set, its servers are used in addition to ICEServers, fetched again
	// once half of ttl has passed.
	ICEURL string
	// HTTPClient dials the trackers' WebSockets and fetches ICEURL.
	// Default: http.DefaultClient.
	HTTPClient *http.Client
	// Net is the network pion's ICE gathers on and sends from: its
	// interfaces give the host candidates. Default: the host's
	// (pion/transport's stdnet). Tests pass one that lives in a network
	// namespace.
	Net transport.Net
	// MulticastDNS resolves the .local host candidates browsers send
	// (peers on the same LAN). Default off: no multicast traffic.
	MulticastDNS bool

	// Offers is how many WebRTC offers each announce carries, as
	// webtorrent's 5; the tracker hands each to a different peer.
	// Negative: none (this peer only answers). Default 5.
	Offers int
	// MaxConns bounds the connections (pending ones included) per room.
	// Default 55, webtorrent's maxConns.
	MaxConns int
	// AnnounceInterval is the re-announce period until a tracker sends its
	// own interval. Default 30 s, as webtorrent.
	AnnounceInterval time.Duration
	// GatherTimeout bounds ICE gathering before an SDP is sent with what
	// was gathered. Default 5 s, simple-peer's ICECOMPLETE_TIMEOUT.
	GatherTimeout time.Duration
	// ConnectTimeout bounds the time from a PeerConnection's answer to its
	// open data channel. Default 25 s, webtorrent's CONNECT_TIMEOUT_WEBRTC.
	ConnectTimeout time.Duration
	// OfferTimeout drops an offer nobody answered. Default 50 s, as
	// bittorrent-tracker's OFFER_TIMEOUT.
	OfferTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the wait before a tracker
	// WebSocket is dialled again; it doubles from Min to Max after each
	// failure, plus up to 50 % jitter. Default 1 s and 5 min.
	ReconnectMin time.Duration
	ReconnectMax time.Duration

	// Logger gets lifecycle at Info, tracker trouble at Warn and each
	// connection at Debug. Default: slog.Default().
	Logger *slog.Logger
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.Offers == 0:
		c.Offers = 5
	case c.Offers < 0:
		c.Offers = 0
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 55
	}
	def(&c.AnnounceInterval, 30*time.Second)
	def(&c.GatherTimeout, 5*time.Second)
	def(&c.ConnectTimeout, 25*time.Second)
	def(&c.OfferTimeout, 50*time.Second)
	def(&c.ReconnectMin, time.Second)
	def(&c.ReconnectMax, 5*time.Minute)
}
