package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// config is every setting of signald, filled from one option table:
// defaults < config file < SIGNALD_* environment < flags.
type config struct {
	Addr         string
	PublicHost   string
	TLSCert      string
	TLSKey       string
	LogLevel     string
	LogFormat    string
	DrainTimeout time.Duration

	Interval         time.Duration
	PeerTTL          time.Duration
	IdleTimeout      time.Duration
	OfferTTL         time.Duration
	MaxMessageBytes  int
	MaxOffers        int
	MaxSDPBytes      int
	MaxSwarmsPerConn int
	MaxConnsPerIP    int
	AnnounceRate     float64
	AnnounceBurst    int
	WriteBufferBytes int

	DataDir string

	TURN                   bool
	TURNUDP                string
	TURNTCP                string
	TURNTLS                string
	TURNRealm              string
	TURNRelayIP            string
	TURNRelayIP6           string
	TURNRelayPorts         string
	TURNSecret             string
	TURNStaticUsers        string
	TURNAllowPeers         string
	TURNUserQuota          int
	TURNTotalQuota         int
	TURNMaxPermissions     int
	TURNBandwidth          int64
	TURNBandwidthTotal     int64
	TURNUnauthRate         float64
	TURNSocketsPerPort     int
	TURNAllocationLifetime time.Duration
	ICETTL                 time.Duration
	ICEAllowOrigins        string

	ConfigFile string
}

// flags registers every option on a fresh FlagSet bound to c, with its
// default. The flag name is also the config file key; the environment
// variable is SIGNALD_ and the name upper-cased with '-' as '_'.
func flags(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("signald", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", ":8000", "address to serve the tracker (ws), /healthz, /metrics and /stats.json on")
	fs.StringVar(&c.PublicHost, "public-host", "", "host name browsers reach this Box by, for the URLs printed at start (default: the host of -addr, or this machine's name)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate file; with -tls-key serves wss:// (reloaded on SIGHUP)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file for -tls-cert")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error (reloaded on SIGHUP)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 5*time.Second, "on SIGTERM, how long to wait for clients to close")
	fs.DurationVar(&c.Interval, "interval", 120*time.Second, "re-announce interval sent to clients")
	fs.DurationVar(&c.PeerTTL, "peer-ttl", 180*time.Second, "remove a peer that has not announced for this long")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 180*time.Second, "close a connection that has not announced for this long")
	fs.DurationVar(&c.OfferTTL, "offer-ttl", 120*time.Second, "how long a relayed offer may be answered")
	fs.IntVar(&c.MaxMessageBytes, "max-message-bytes", 64<<10, "close a connection that sends a larger message")
	fs.IntVar(&c.MaxOffers, "max-offers", 10, "offers relayed per announce")
	fs.IntVar(&c.MaxSDPBytes, "max-sdp-bytes", 16<<10, "largest offer or answer relayed")
	fs.IntVar(&c.MaxSwarmsPerConn, "max-swarms-per-conn", 100, "swarms (peer_ids) one connection may hold")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 512, "connections from one address; -1 for no limit")
	fs.Float64Var(&c.AnnounceRate, "announce-rate", 20, "requests per second one connection may send; -1 for no limit")
	fs.IntVar(&c.AnnounceBurst, "announce-burst", 60, "burst of requests above -announce-rate")
	fs.IntVar(&c.WriteBufferBytes, "write-buffer-bytes", 256<<10, "bytes queued for a slow connection before it is closed")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for state (the generated TURN secret); default $STATE_DIRECTORY, else ~/.local/state/signald")
	fs.BoolVar(&c.TURN, "turn", true, "serve STUN and TURN, and /ice")
	fs.StringVar(&c.TURNUDP, "turn-udp", ":3478", "comma-separated UDP addresses for STUN/TURN; empty for none")
	fs.StringVar(&c.TURNTCP, "turn-tcp", ":3478", "comma-separated TCP addresses for STUN/TURN; empty for none")
	fs.StringVar(&c.TURNTLS, "turn-tls", ":5349", "comma-separated addresses for TURN over TLS, served when -tls-cert is set; empty for none")
	fs.StringVar(&c.TURNRealm, "turn-realm", "boxsignal", "TURN realm")
	fs.StringVar(&c.TURNRelayIP, "turn-relay-ip", "", "public IPv4 address put in relayed addresses (the Box's WAN address); default: the address of the default route's interface")
	fs.StringVar(&c.TURNRelayIP6, "turn-relay-ip6", "", "public IPv6 address for IPv6 relays; default: the default IPv6 route's source, if any")
	fs.StringVar(&c.TURNRelayPorts, "turn-relay-ports", "49152-65535", "relay port range MIN-MAX (forward these UDP ports to the Box)")
	fs.StringVar(&c.TURNSecret, "turn-secret", "", "comma-separated TURN REST secrets, the first signs /ice credentials (rotation: put the new one first); default: a secret generated in -data-dir")
	fs.StringVar(&c.TURNStaticUsers, "turn-static-users", "", "comma-separated user:password long-term TURN users that never expire")
	fs.StringVar(&c.TURNAllowPeers, "turn-allow-peers", "", "comma-separated CIDRs TURN may relay to although the deny-list refuses them (e.g. your LAN, 192.168.1.0/24)")
	fs.IntVar(&c.TURNUserQuota, "turn-user-quota", 50, "concurrent allocations per user (per client IP for /ice credentials)")
	fs.IntVar(&c.TURNTotalQuota, "turn-total-quota", 1000, "concurrent allocations in all")
	fs.IntVar(&c.TURNMaxPermissions, "turn-max-permissions", 32, "permissions, and channels, per allocation")
	fs.Int64Var(&c.TURNBandwidth, "turn-bandwidth", 1<<20, "relayed bytes/s per allocation, each direction; -1 for no limit")
	fs.Int64Var(&c.TURNBandwidthTotal, "turn-bandwidth-total", -1, "relayed bytes/s in all, each direction; -1 for no limit")
	fs.Float64Var(&c.TURNUnauthRate, "turn-unauth-rate", 20, "unauthenticated STUN/TURN requests per second per client IP")
	fs.IntVar(&c.TURNSocketsPerPort, "turn-sockets-per-port", 0, "UDP sockets per port (SO_REUSEPORT); 0 for one per CPU")
	fs.DurationVar(&c.TURNAllocationLifetime, "turn-allocation-lifetime", 10*time.Minute, "allocation lifetime when the client asks none")
	fs.DurationVar(&c.ICETTL, "ice-ttl", 12*time.Hour, "lifetime of the TURN credentials /ice hands out (bounds a relayed call)")
	fs.StringVar(&c.ICEAllowOrigins, "ice-allow-origins", "", "comma-separated origins whose pages may read /ice (CORS), * for any; default: same origin only")
	fs.StringVar(&c.ConfigFile, "config", "", "TOML file of options (keys are the flag names)")
	return fs
}

func envName(flagName string) string {
	return "SIGNALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// source says where each option's value came from, for logs and errors.
type source map[string]string

// loadConfig builds the configuration from args, the environment and the
// config file the args or environment name.
func loadConfig(args []string, getenv func(string) string, environ []string) (*config, source, error) {
	// First pass: find the explicit flags and the config file.
	var probe config
	fs := flags(&probe)
	fs.SetOutput(new(strings.Builder))
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	explicit := map[string]string{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = f.Value.String() })

	c := new(config)
	fs = flags(c)
	src := source{}
	fs.VisitAll(func(f *flag.Flag) { src[f.Name] = "default" })

	path := getenv(envName("config"))
	if v, ok := explicit["config"]; ok {
		path = v
	}
	if path != "" {
		if err := applyFile(fs, path, src); err != nil {
			return nil, nil, err
		}
	}
	// Environment: every SIGNALD_ variable must name an option.
	known := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { known[envName(f.Name)] = f.Name })
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "SIGNALD_") {
			continue
		}
		name, ok := known[k]
		if !ok {
			return nil, nil, fmt.Errorf("environment %s: no such option", k)
		}
		if err := fs.Set(name, v); err != nil {
			return nil, nil, fmt.Errorf("environment %s=%q: %v", k, v, err)
		}
		src[name] = "env " + k
	}
	for name, v := range explicit {
		if err := fs.Set(name, v); err != nil {
			return nil, nil, fmt.Errorf("flag -%s=%q: %v", name, v, err)
		}
		src[name] = "flag"
	}
	c.ConfigFile = path
	return c, src, c.validate()
}

// applyFile sets the options of a TOML file; unknown keys and bad values are
// errors naming the line.
func applyFile(fs *flag.FlagSet, path string, src source) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var m map[string]any
	if _, err := toml.Decode(string(text), &m); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("config %s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line := lineOf(text, k)
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return fmt.Errorf("config %s:%d: unknown key %q", path, line, k)
		}
		var v string
		switch x := m[k].(type) {
		case string:
			v = x
		case int64, float64, bool:
			v = fmt.Sprint(x)
		default:
			return fmt.Errorf("config %s:%d: %s: want a string, number or boolean, got %T", path, line, k, x)
		}
		if err := fs.Set(k, v); err != nil {
			return fmt.Errorf("config %s:%d: %s = %q: %v", path, line, k, v, err)
		}
		src[k] = fmt.Sprintf("file %s:%d", path, line)
	}
	return nil
}

func lineOf(text []byte, key string) int {
	re := regexp.MustCompile(`(?m)^[ \t]*"?` + regexp.QuoteMeta(key) + `"?[ \t]*=`)
	loc := re.FindIndex(text)
	if loc == nil {
		return 0
	}
	return 1 + strings.Count(string(text[:loc[0]]), "\n")
}

// validate reports every bad field at once.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert and tls-key go together (got cert %q, key %q)", c.TLSCert, c.TLSKey)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log-level %q: %v", c.LogLevel, err)
	}
	if c.TURN {
		if _, _, err := c.relayPorts(); err != nil {
			bad("turn-relay-ports %q: %v", c.TURNRelayPorts, err)
		}
		if _, err := c.allowPeers(); err != nil {
			bad("turn-allow-peers %q: %v", c.TURNAllowPeers, err)
		}
		if _, err := c.staticUsers(); err != nil {
			bad("turn-static-users: %v", err)
		}
		for _, ip := range []struct{ name, v string }{{"turn-relay-ip", c.TURNRelayIP}, {"turn-relay-ip6", c.TURNRelayIP6}} {
			if ip.v != "" && net.ParseIP(ip.v) == nil {
				bad("%s %q: not an IP address", ip.name, ip.v)
			}
		}
	}
	if c.DrainTimeout < 0 {
		bad("drain-timeout %v is negative", c.DrainTimeout)
	}
	return errors.Join(errs...)
}
