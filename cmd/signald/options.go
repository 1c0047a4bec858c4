package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/boxsignal/boxsignal/dht"
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

	Dashboard  bool
	AdminToken string

	ACMEDomain   string
	ACMEEmail    string
	ACMEDirURL   string
	ACMECAFile   string
	ACMEHTTPAddr string

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

	Federation     bool
	P2PListen      string
	P2PPortMap     bool
	P2PKeyFile     string
	FriendsFile    string
	DHT            bool
	DHTPolicy      string
	DHTBootstrap   string
	FriendRate     float64
	StrangerRate   float64
	FederationRate float64

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
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for state (the generated TURN secret and admin token, ACME certificates); default $STATE_DIRECTORY, else ~/.local/state/signald")
	fs.BoolVar(&c.Dashboard, "dashboard", true, "serve the dashboard at /, its live feed /events, and /box.json and /bugout.js for pages")
	fs.StringVar(&c.AdminToken, "admin-token", "", "token that unlocks the dashboard's admin parts (configuration, secrets); default: one generated in -data-dir and printed at first start")
	fs.StringVar(&c.ACMEDomain, "acme-domain", "", "comma-separated host names to get a certificate for from an ACME CA (Let's Encrypt), served as wss:// on -addr, which port 443 of those names must reach; instead of -tls-cert")
	fs.StringVar(&c.ACMEEmail, "acme-email", "", "contact address given to the ACME CA (expiry warnings)")
	fs.StringVar(&c.ACMEDirURL, "acme-dir-url", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL (Let's Encrypt staging: https://acme-staging-v02.api.letsencrypt.org/directory)")
	fs.StringVar(&c.ACMECAFile, "acme-ca-file", "", "PEM CA certificates to trust for the ACME directory (a private CA such as step-ca); default: the system's")
	fs.StringVar(&c.ACMEHTTPAddr, "acme-http-addr", "", "address to answer ACME http-01 challenges on (e.g. :80, which port 80 must reach); default: tls-alpn-01 on -addr only")
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
	fs.BoolVar(&c.Federation, "federation", true, "relay offers with friends' Boxes (and Boxes found in the DHT); runs once -friends-file lists a friend or -dht-bootstrap is set")
	fs.StringVar(&c.P2PListen, "p2p-listen", "/ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/quic-v1,/ip6/::/tcp/4001,/ip6/::/udp/4001/quic-v1", "comma-separated libp2p multiaddrs for Box-to-Box federation (forward TCP and UDP 4001 to the Box)")
	fs.BoolVar(&c.P2PPortMap, "p2p-port-map", true, "ask the home router to forward the -p2p-listen ports (UPnP, NAT-PMP)")
	fs.StringVar(&c.P2PKeyFile, "p2p-key-file", "", "the Box's federation identity (Ed25519, created at first start, mode 0600); default: p2p.key in -data-dir")
	fs.StringVar(&c.FriendsFile, "friends-file", "", "the friends file (reloaded on SIGHUP; see: signald friend); default: friends in -data-dir")
	fs.BoolVar(&c.DHT, "dht", true, "run the Kademlia DHT of Boxes: provide rooms with local peers, look up rooms no friend has")
	fs.StringVar(&c.DHTPolicy, "dht-policy", "friends", "Boxes that are not friends: friends (refused) or open (found in the DHT, relayed under -stranger-rate)")
	fs.StringVar(&c.DHTBootstrap, "dht-bootstrap", "", "comma-separated multiaddrs with /p2p/<peer ID> of DHT peers besides friends")
	fs.Float64Var(&c.FriendRate, "friend-rate", 20, "offers per second a friend may relay to this Box (burst twice that), unless its friends-file line says rate=")
	fs.Float64Var(&c.StrangerRate, "stranger-rate", 5, "offers per second a Box that is not a friend may relay here, with -dht-policy open")
	fs.Float64Var(&c.FederationRate, "federation-rate", 100, "offers per second all other Boxes together may relay here")
	fs.StringVar(&c.ConfigFile, "config", "", "TOML file of options (keys are the flag names)")
	return fs
}

// flagsOf returns the option table bound to a copy of c, to read its values
// (flags(c) would reset c to the defaults).
func flagsOf(c *config) *flag.FlagSet {
	cp := new(config)
	fs := flags(cp)
	*cp = *c
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
			return nil, nil, fmt.Errorf("environment %s=%q: %v", k, v, valueError(fs.Lookup(name), err))
		}
		src[name] = "env " + k
	}
	for name, v := range explicit {
		if err := fs.Set(name, v); err != nil {
			return nil, nil, fmt.Errorf("flag -%s=%q: %v", name, v, valueError(fs.Lookup(name), err))
		}
		src[name] = "flag"
	}
	c.ConfigFile = path
	return c, src, c.validate(src)
}

// applyFile sets the options of a TOML file. Unknown keys and bad values
// are errors naming the line and the reason; all of them are reported.
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
	sort.Slice(keys, func(i, j int) bool { return lineOf(text, keys[i]) < lineOf(text, keys[j]) })
	var errs []error
	for _, k := range keys {
		line := lineOf(text, k)
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			errs = append(errs, fmt.Errorf("config %s:%d: unknown key %q%s", path, line, k, suggest(fs, k)))
			continue
		}
		var v string
		switch x := m[k].(type) {
		case string:
			v = x
		case int64, float64, bool:
			v = fmt.Sprint(x)
		default:
			errs = append(errs, fmt.Errorf("config %s:%d: %s: want a string, number or boolean, got %s", path, line, k, tomlType(x)))
			continue
		}
		if err := fs.Set(k, v); err != nil {
			errs = append(errs, fmt.Errorf("config %s:%d: %s = %q: %v", path, line, k, v, valueError(f, err)))
			continue
		}
		src[k] = fmt.Sprintf("file %s:%d", path, line)
	}
	return errors.Join(errs...)
}

func tomlType(x any) string {
	switch x.(type) {
	case map[string]any:
		return "a table (options are top-level keys)"
	case []any, []map[string]any:
		return "an array (write lists as one comma-separated string)"
	}
	return fmt.Sprintf("%T", x)
}

// suggest names the option a mistyped key probably meant.
func suggest(fs *flag.FlagSet, key string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(key, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// valueError says what a flag of f's type wants instead of the flag
// package's bare "parse error".
func valueError(f *flag.Flag, err error) error {
	var want string
	switch f.Value.(flag.Getter).Get().(type) {
	case time.Duration:
		want = `want a duration such as "90s", "2m" or "1h30m"`
	case bool:
		want = "want true or false"
	case int, int64:
		want = "want an integer"
	case float64:
		want = "want a number"
	default:
		return err
	}
	if strings.Contains(err.Error(), "range") {
		return fmt.Errorf("%s in range (%v)", want, err)
	}
	return errors.New(want)
}

func lineOf(text []byte, key string) int {
	re := regexp.MustCompile(`(?m)^[ \t]*(?:\[[ \t]*)?"?` + regexp.QuoteMeta(key) + `"?[ \t]*[=\]]`)
	loc := re.FindIndex(text)
	if loc == nil {
		return 0
	}
	return 1 + strings.Count(string(text[:loc[0]]), "\n")
}

// where says where an option's value was set, as an error prefix.
func (s source) where(name string) string {
	switch v := s[name]; {
	case strings.HasPrefix(v, "file "):
		return "config " + strings.TrimPrefix(v, "file ") + ": "
	case strings.HasPrefix(v, "env "):
		return "environment " + strings.TrimPrefix(v, "env ") + ": "
	case v == "flag":
		return "flag -" + name + ": "
	}
	return ""
}

// validate reports every bad field at once, each with where it was set.
func (c *config) validate(src source) error {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s%s", src.where(name), fmt.Sprintf(format, a...)))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		name := "tls-cert"
		if c.TLSCert == "" {
			name = "tls-key"
		}
		bad(name, "tls-cert and tls-key go together (got cert %q, key %q)", c.TLSCert, c.TLSKey)
	}
	if c.ACMEDomain != "" && c.TLSCert != "" {
		bad("acme-domain", "acme-domain %q and tls-cert %q: choose one source of certificates", c.ACMEDomain, c.TLSCert)
	}
	for _, d := range list(c.ACMEDomain) {
		if strings.ContainsAny(d, ":/ ") || net.ParseIP(d) != nil {
			bad("acme-domain", "acme-domain %q: want host names, no IP addresses, ports or schemes", d)
		}
	}
	if c.ACMEDomain != "" {
		if u, err := url.Parse(c.ACMEDirURL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("acme-dir-url", "acme-dir-url %q: want an https:// URL", c.ACMEDirURL)
		}
	}
	if c.ACMEEmail != "" && !strings.Contains(c.ACMEEmail, "@") {
		bad("acme-email", "acme-email %q: not an email address", c.ACMEEmail)
	}
	addrs := []struct{ name, v string }{{"addr", c.Addr}, {"acme-http-addr", c.ACMEHTTPAddr}}
	if c.TURN {
		addrs = append(addrs, struct{ name, v string }{"turn-udp", c.TURNUDP}, struct{ name, v string }{"turn-tcp", c.TURNTCP}, struct{ name, v string }{"turn-tls", c.TURNTLS})
	}
	for _, a := range addrs {
		for _, hp := range list(a.v) {
			if _, port, err := net.SplitHostPort(hp); err != nil {
				bad(a.name, "%s %q: want host:port or :port", a.name, hp)
			} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
				bad(a.name, "%s %q: port %q is not a number in 0-65535", a.name, hp, port)
			}
		}
	}
	if c.Addr == "" {
		bad("addr", "addr is empty: the tracker needs an address")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "log-format %q: want text or json", c.LogFormat)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log-level", "log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.TURN {
		if _, _, err := c.relayPorts(); err != nil {
			bad("turn-relay-ports", "turn-relay-ports %q: %v", c.TURNRelayPorts, err)
		}
		if _, err := c.allowPeers(); err != nil {
			bad("turn-allow-peers", "turn-allow-peers %q: %v", c.TURNAllowPeers, err)
		}
		if _, err := c.staticUsers(); err != nil {
			bad("turn-static-users", "turn-static-users: %v", err)
		}
		for _, ip := range []struct{ name, v string }{{"turn-relay-ip", c.TURNRelayIP}, {"turn-relay-ip6", c.TURNRelayIP6}} {
			if ip.v != "" && net.ParseIP(ip.v) == nil {
				bad(ip.name, "%s %q: not an IP address", ip.name, ip.v)
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"drain-timeout", c.DrainTimeout}, {"interval", c.Interval}, {"peer-ttl", c.PeerTTL}, {"idle-timeout", c.IdleTimeout},
		{"offer-ttl", c.OfferTTL}, {"turn-allocation-lifetime", c.TURNAllocationLifetime}, {"ice-ttl", c.ICETTL}} {
		if d.v < 0 {
			bad(d.name, "%s %v is negative", d.name, d.v)
		}
	}
	if c.Federation {
		if _, err := c.p2pListen(); err != nil {
			bad("p2p-listen", "p2p-listen: %v", err)
		}
		if _, err := c.dhtBootstrap(); err != nil {
			bad("dht-bootstrap", "dht-bootstrap: %v", err)
		}
		if _, err := dht.ParsePolicy(c.DHTPolicy); err != nil {
			bad("dht-policy", "dht-policy: %v", err)
		}
		for _, r := range []struct {
			name string
			v    float64
		}{{"friend-rate", c.FriendRate}, {"stranger-rate", c.StrangerRate}, {"federation-rate", c.FederationRate}} {
			if r.v <= 0 {
				bad(r.name, "%s %v: want a positive rate", r.name, r.v)
			}
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("admin-token", "admin-token: %d characters, want at least 16", len(c.AdminToken))
	}
	return errors.Join(errs...)
}

// secretOptions are never shown on the dashboard's public parts nor by
// "signald config print" without -secrets.
var secretOptions = map[string]bool{"turn-secret": true, "turn-static-users": true, "admin-token": true}
