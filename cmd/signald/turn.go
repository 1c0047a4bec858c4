package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/boxsignal/boxsignal/stunturn"
	"golang.org/x/crypto/acme"
)

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c *config) relayPorts() (lo, hi int, err error) {
	a, b, ok := strings.Cut(c.TURNRelayPorts, "-")
	if !ok {
		return 0, 0, fmt.Errorf("want MIN-MAX")
	}
	if lo, err = strconv.Atoi(strings.TrimSpace(a)); err == nil {
		hi, err = strconv.Atoi(strings.TrimSpace(b))
	}
	if err != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("want MIN-MAX within 1024-65535")
	}
	return lo, hi, nil
}

func (c *config) allowPeers() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, f := range list(c.TURNAllowPeers) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

func (c *config) staticUsers() (map[string]string, error) {
	users := map[string]string{}
	for _, f := range list(c.TURNStaticUsers) {
		u, p, ok := strings.Cut(f, ":")
		if !ok || u == "" || p == "" {
			return nil, fmt.Errorf("%q: want user:password", u)
		}
		users[u] = p
	}
	return users, nil
}

// dataDir is where signald keeps state: -data-dir, else systemd's
// STATE_DIRECTORY, else ~/.local/state/signald.
func (c *config) dataDir(getenv func(string) string) (string, error) {
	if c.DataDir != "" {
		return c.DataDir, nil
	}
	if d := getenv("STATE_DIRECTORY"); d != "" {
		return strings.Split(d, ":")[0], nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no -data-dir and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "signald"), nil
}

// startTURN starts the STUN/TURN server and returns the /ice handler.
func (b *box) startTURN(getenv func(string) string) (http.Handler, error) {
	c := b.cfg
	secrets := [][]byte{}
	for _, s := range list(c.TURNSecret) {
		secrets = append(secrets, []byte(s))
	}
	if len(secrets) == 0 {
		dir, err := c.dataDir(getenv)
		if err != nil {
			return nil, err
		}
		s, err := stunturn.LoadOrCreateSecret(filepath.Join(dir, "turn-secret"))
		if err != nil {
			return nil, err
		}
		secrets = [][]byte{s}
	}
	lo, hi, _ := c.relayPorts()
	allow, _ := c.allowPeers()
	users, _ := c.staticUsers()
	cfg := stunturn.Config{
		Realm:                  c.TURNRealm,
		ListenUDP:              list(c.TURNUDP),
		ListenTCP:              list(c.TURNTCP),
		ListenTLS:              []string{},
		RelayAddress:           net.ParseIP(c.TURNRelayIP),
		RelayAddressV6:         net.ParseIP(c.TURNRelayIP6),
		RelayPortMin:           lo,
		RelayPortMax:           hi,
		Secrets:                secrets,
		StaticUsers:            users,
		AllowPeers:             allow,
		UserQuota:              c.TURNUserQuota,
		TotalQuota:             c.TURNTotalQuota,
		MaxPermissions:         c.TURNMaxPermissions,
		BandwidthPerAllocation: c.TURNBandwidth,
		BandwidthTotal:         c.TURNBandwidthTotal,
		UnauthRatePerIP:        c.TURNUnauthRate,
		SocketsPerPort:         c.TURNSocketsPerPort,
		AllocationLifetime:     c.TURNAllocationLifetime,
		Logger:                 b.log,
		Registerer:             b.reg,
	}
	if b.tls() {
		cfg.ListenTLS = list(c.TURNTLS)
		cfg.TLSConfig = b.tlsConfig()
	}
	srv, err := stunturn.NewServer(cfg)
	if err != nil {
		return nil, fmt.Errorf("stun/turn: %w", err)
	}
	b.turn = srv
	b.turnSecrets = len(secrets)
	return b.iceHandler(secrets[0]), nil
}

// iceHandler serves /ice with the URLs of this Box. Without -public-host
// the host is the one the page used to reach /ice, so the URLs work from
// wherever the page is.
func (b *box) iceHandler(secret []byte) http.Handler {
	ice := stunturn.ICEConfig{Secret: secret, TTL: b.cfg.ICETTL, AllowOrigins: list(b.cfg.ICEAllowOrigins)}
	if b.cfg.PublicHost != "" {
		ice.URLs = b.iceURLs(b.cfg.PublicHost)
		return stunturn.NewICEHandler(ice)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		per := ice
		per.URLs = b.iceURLs(strings.Trim(host, "[]"))
		stunturn.NewICEHandler(per).ServeHTTP(w, r)
	})
}

func (b *box) iceURLs(host string) []string {
	a := b.turn.Addrs()
	var urls []string
	hp := func(addr net.Addr) string {
		_, port, _ := net.SplitHostPort(addr.String())
		return net.JoinHostPort(host, port)
	}
	if len(a.UDP) > 0 {
		urls = append(urls, "stun:"+hp(a.UDP[0]), "turn:"+hp(a.UDP[0])+"?transport=udp")
	}
	if len(a.TCP) > 0 {
		if len(a.UDP) == 0 {
			urls = append(urls, "stun:"+hp(a.TCP[0]))
		}
		urls = append(urls, "turn:"+hp(a.TCP[0])+"?transport=tcp")
	}
	if len(a.TLS) > 0 {
		urls = append(urls, "turns:"+hp(a.TLS[0])+"?transport=tcp")
	}
	return urls
}

func (b *box) tlsConfig() *tls.Config {
	if b.acme != nil {
		return &tls.Config{
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"http/1.1", acme.ALPNProto}, // tls-alpn-01 challenges arrive here
			GetCertificate: b.acme.getCertificate,
		}
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return b.cert.Load(), nil },
	}
}
