package stunturn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for the zero fields of Config.
const (
	DefaultListen                 = ":3478"
	DefaultListenTLS              = ":5349"
	DefaultRealm                  = "boxsignal"
	DefaultRelayPortMin           = 49152
	DefaultRelayPortMax           = 65535
	DefaultUserQuota              = 50
	DefaultTotalQuota             = 1000
	DefaultMaxPermissions         = 32
	DefaultBandwidthPerAllocation = 1 << 20 // bytes/s, each direction
	DefaultUnauthRatePerIP        = 20      // requests/s
	DefaultAllocationLife         = 10 * time.Minute
	maxSocketsPerPort             = 16
)

// Config configures a Server. A zero field means the default given in its
// comment; for the limits a negative value means "no limit".
type Config struct {
	// Realm is the long-term credential realm. Default DefaultRealm.
	Realm string

	// ListenUDP and ListenTCP are the addresses for STUN and TURN over UDP
	// and TCP. Nil means []string{":3478"} (all interfaces, IPv4 and IPv6);
	// an empty non-nil slice means no listener of that kind.
	ListenUDP, ListenTCP []string
	// ListenTLS are the addresses for TURN over TLS. Nil means ":5349" when
	// TLSConfig is set, else none.
	ListenTLS []string
	// TLSConfig enables TLS listeners. Use GetCertificate to rotate
	// certificates without a restart.
	TLSConfig *tls.Config

	// RelayAddress is the public IPv4 address written into relayed
	// addresses (the Box's WAN address behind a home router that forwards
	// the relay ports). Default: the address of the interface holding the
	// default route, or 127.0.0.1 when every listener is on loopback.
	RelayAddress net.IP
	// RelayAddressV6 is the same for IPv6 relays (RFC 6156). Default: the
	// source address of the default IPv6 route, if any; without one, IPv6
	// allocations are refused with 440.
	RelayAddressV6 net.IP
	// RelayPortMin and RelayPortMax bound the relay ports (inclusive).
	// Default 49152-65535.
	RelayPortMin, RelayPortMax int

	// Secrets are the TURN REST shared secrets (see NewCredentials). All of
	// them are accepted, which allows rotation: sign with the new one,
	// verify with both until the old credentials have expired.
	Secrets [][]byte
	// StaticUsers maps usernames to passwords for long-term credentials
	// that do not expire. A name must not look like a REST username
	// ("<digits>:..."). With neither Secrets nor StaticUsers the server
	// answers STUN only and refuses every Allocate with 400.
	StaticUsers map[string]string

	// AllowPeers opens address ranges that the peer filter refuses by
	// default (private, CGNAT, ULA, documentation, the Box's own
	// addresses), e.g. the home LAN. It cannot open unspecified, loopback,
	// link-local, multicast or 240.0.0.0/4.
	AllowPeers []netip.Prefix
	// AllowLoopbackForTests lets clients relay to 127.0.0.0/8 and ::1.
	// Only tests set it.
	AllowLoopbackForTests bool

	// UserQuota caps concurrent allocations per user (the <user> part of a
	// REST username, or a static username). Default DefaultUserQuota.
	UserQuota int
	// TotalQuota caps concurrent allocations on the server. Default
	// DefaultTotalQuota.
	TotalQuota int
	// MaxPermissions caps permissions (distinct peer IPs) and, separately,
	// channel bindings per allocation. Default DefaultMaxPermissions.
	MaxPermissions int
	// BandwidthPerAllocation caps each allocation's relayed payload in
	// bytes/s, each direction separately. UDP over the cap is dropped, TCP
	// is slowed down. Default DefaultBandwidthPerAllocation (1 MiB/s).
	BandwidthPerAllocation int64
	// BandwidthTotal caps all relayed payload in bytes/s, each direction
	// separately. Default: no limit.
	BandwidthTotal int64
	// UnauthRatePerIP caps, per source IP (IPv6: per /64), the requests
	// that are answered without a valid MESSAGE-INTEGRITY (Binding, the
	// first Allocate, 401s) and new TCP/TLS connections, against 401 floods
	// and reflection. Excess UDP requests are dropped unanswered and excess
	// connections closed. Burst is four seconds' worth, at least 8.
	// Default DefaultUnauthRatePerIP.
	UnauthRatePerIP float64

	// SocketsPerPort is the number of UDP sockets opened on each ListenUDP
	// address with SO_REUSEPORT, each with its own read goroutine (and, on
	// Linux, one more that reads the relay sockets of its clients), so
	// that relaying uses every core. Default runtime.NumCPU(), at most 16.
	SocketsPerPort int

	// AllocationLifetime is the lifetime of an allocation that the client
	// does not ask for one (clients refresh before it ends). Default 10 min.
	// A credential's expiry ends its allocations earlier.
	AllocationLifetime time.Duration

	// Logger receives lifecycle logs (Info) and per-request events
	// (Debug). Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the signald_turn_* metrics. Default: none.
	Registerer prometheus.Registerer
}

// withDefaults returns cfg with zero fields filled in, or every problem it
// found.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.ListenUDP == nil {
		cfg.ListenUDP = []string{DefaultListen}
	}
	if cfg.ListenTCP == nil {
		cfg.ListenTCP = []string{DefaultListen}
	}
	if cfg.ListenTLS == nil && cfg.TLSConfig != nil {
		cfg.ListenTLS = []string{DefaultListenTLS}
	}
	if len(cfg.ListenTLS) > 0 && cfg.TLSConfig == nil {
		errs = append(errs, fmt.Errorf("tls listeners %v need a TLS config", cfg.ListenTLS))
	}
	if len(cfg.ListenUDP)+len(cfg.ListenTCP)+len(cfg.ListenTLS) == 0 {
		errs = append(errs, errors.New("no listener: udp, tcp and tls listener lists are all empty"))
	}
	if cfg.RelayPortMin == 0 {
		cfg.RelayPortMin = DefaultRelayPortMin
	}
	if cfg.RelayPortMax == 0 {
		cfg.RelayPortMax = DefaultRelayPortMax
	}
	if cfg.RelayPortMin < 1 || cfg.RelayPortMax > 65535 || cfg.RelayPortMin > cfg.RelayPortMax {
		errs = append(errs, fmt.Errorf("relay port range %d-%d: want 1 <= min <= max <= 65535",
			cfg.RelayPortMin, cfg.RelayPortMax))
	}
	if cfg.RelayAddress != nil && cfg.RelayAddress.To4() == nil {
		errs = append(errs, fmt.Errorf("relay address %v: not IPv4", cfg.RelayAddress))
	}
	if cfg.RelayAddressV6 != nil && (cfg.RelayAddressV6.To4() != nil || cfg.RelayAddressV6.To16() == nil) {
		errs = append(errs, fmt.Errorf("IPv6 relay address %v: not IPv6", cfg.RelayAddressV6))
	}
	for i, s := range cfg.Secrets {
		if len(s) < 16 {
			errs = append(errs, fmt.Errorf("secret %d: %d bytes, want at least 16", i, len(s)))
		}
	}
	for name := range cfg.StaticUsers {
		if !validStaticUser(name) {
			errs = append(errs, fmt.Errorf("static user %q: empty or shaped like a REST username", name))
		}
	}
	for _, p := range cfg.AllowPeers {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("allowed peers %v: invalid prefix", p))
		}
	}
	cfg.UserQuota = orDefault(cfg.UserQuota, DefaultUserQuota)
	cfg.TotalQuota = orDefault(cfg.TotalQuota, DefaultTotalQuota)
	cfg.MaxPermissions = orDefault(cfg.MaxPermissions, DefaultMaxPermissions)
	cfg.BandwidthPerAllocation = orDefault(cfg.BandwidthPerAllocation, DefaultBandwidthPerAllocation)
	cfg.UnauthRatePerIP = orDefault(cfg.UnauthRatePerIP, DefaultUnauthRatePerIP)
	if cfg.SocketsPerPort == 0 {
		cfg.SocketsPerPort = min(runtime.NumCPU(), maxSocketsPerPort)
	}
	if cfg.SocketsPerPort < 0 || cfg.SocketsPerPort > 256 {
		errs = append(errs, fmt.Errorf("sockets per port %d: want 1-256", cfg.SocketsPerPort))
	}
	if cfg.AllocationLifetime == 0 {
		cfg.AllocationLifetime = DefaultAllocationLife
	}
	if cfg.AllocationLifetime < 0 || cfg.AllocationLifetime > time.Hour {
		errs = append(errs, fmt.Errorf("allocation lifetime %v: want 0-1h", cfg.AllocationLifetime))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("stunturn config: %w", errors.Join(errs...))
	}
	return cfg, nil
}

// orDefault maps 0 to def and any negative value to 0, which the limits
// read as "unlimited".
func orDefault[T int | int64 | float64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
