package signal

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server. A zero field means the default shown; for the
// limits where 0 is a useful value, -1 means "no limit".
type Config struct {
	// Interval is the re-announce interval sent to clients; default 120 s
	// (bittorrent-tracker's WebSocket interval).
	Interval time.Duration
	// PeerTTL removes a peer that has not announced for this long; default
	// 180 s.
	PeerTTL time.Duration
	// IdleTimeout closes a connection that has sent no announce for this
	// long; default 180 s.
	IdleTimeout time.Duration
	// OfferTTL is how long a relayed offer may be answered; default 120 s
	// (aquatic's max_offer_age; clients give up after 50 s).
	OfferTTL time.Duration

	// MaxMessageBytes closes a connection that sends a larger message;
	// default 64 KiB.
	MaxMessageBytes int
	// MaxOffers is the number of offers relayed per announce; default 10.
	MaxOffers int
	// MaxSDPBytes bounds one offer or answer (raw JSON); default 16 KiB.
	MaxSDPBytes int
	// MaxSwarmsPerConn bounds the peers one connection holds (one per
	// swarm and peer_id); default 100.
	MaxSwarmsPerConn int
	// MaxConnsPerIP refuses upgrades beyond this many connections from one
	// address; default 512, -1 for no limit.
	MaxConnsPerIP int
	// AnnounceRate is the sustained announces (and answers, scrapes) per
	// second one connection may send, with a burst of AnnounceBurst;
	// defaults 20 and 60, -1 for no limit. Requests over it get a failure.
	AnnounceRate  float64
	AnnounceBurst int
	// WriteBufferBytes bounds what is queued for one slow connection beyond
	// the kernel's buffer; a connection over it is closed. Default 256 KiB.
	WriteBufferBytes int
	// Pollers is the number of event loops (goroutines that read, serve
	// and write connections); default half of GOMAXPROCS, rounded up. A
	// loop spends most of its time in syscalls: with no more loops than
	// half the Ps, the runtime always has a P to spare, and one loop sees
	// more of the connections, so it writes more frames per syscall.
	Pollers int

	// Logger receives lifecycle logs at Info and per-peer events at Debug;
	// default slog.Default().
	Logger *slog.Logger
	// Registerer receives the tracker's metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Interval, 120*time.Second)
	def(&c.PeerTTL, 180*time.Second)
	def(&c.IdleTimeout, 180*time.Second)
	def(&c.OfferTTL, 120*time.Second)
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	defInt(&c.MaxMessageBytes, 64<<10)
	defInt(&c.MaxOffers, 10)
	defInt(&c.MaxSDPBytes, 16<<10)
	defInt(&c.MaxSwarmsPerConn, 100)
	defInt(&c.MaxConnsPerIP, 512)
	defInt(&c.AnnounceBurst, 60)
	defInt(&c.WriteBufferBytes, 256<<10)
	if c.AnnounceRate == 0 {
		c.AnnounceRate = 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", c.Interval}, {"peer TTL", c.PeerTTL}, {"idle timeout", c.IdleTimeout}, {"offer TTL", c.OfferTTL}} {
		if d.v < time.Second {
			return c, fmt.Errorf("signal: %s %v is under 1s", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"max message bytes", c.MaxMessageBytes}, {"max offers", c.MaxOffers}, {"max SDP bytes", c.MaxSDPBytes},
		{"max swarms per connection", c.MaxSwarmsPerConn}, {"announce burst", c.AnnounceBurst}, {"write buffer bytes", c.WriteBufferBytes}} {
		if n.v < 1 {
			return c, fmt.Errorf("signal: %s %d is not positive", n.name, n.v)
		}
	}
	if c.MaxConnsPerIP < -1 {
		return c, fmt.Errorf("signal: max connections per IP %d: use -1 for no limit", c.MaxConnsPerIP)
	}
	if c.AnnounceRate < 0 && c.AnnounceRate != -1 {
		return c, fmt.Errorf("signal: announce rate %v: use -1 for no limit", c.AnnounceRate)
	}
	if c.MaxSDPBytes > c.MaxMessageBytes {
		return c, fmt.Errorf("signal: max SDP bytes %d exceeds max message bytes %d", c.MaxSDPBytes, c.MaxMessageBytes)
	}
	return c, nil
}
