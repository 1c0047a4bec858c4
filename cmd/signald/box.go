package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/boxsignal/boxsignal/dht"
	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/stunturn"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// box is one running signald: the tracker and its HTTP surroundings.
type box struct {
	cfg                  *config
	src                  source
	log                  *slog.Logger
	level                *slog.LevelVar
	reg                  *prometheus.Registry
	tracker              *signal.Server
	turn                 *stunturn.Server
	fed                  atomic.Pointer[dht.Node] // nil until there is someone to federate with
	keyPath, friendsPath string
	p2pKey               crypto.PrivKey
	p2pID                peer.ID
	ice                  http.Handler
	cert                 atomic.Pointer[tls.Certificate]
	acme                 *acmeTLS // nil unless -acme-domain
	draining             atomic.Bool

	sys         *prometheus.Registry // process series, served on /metrics too
	gatherers   prometheus.Gatherers // everything /metrics serves
	samples     *sampler             // the dashboard's figures; nil without -dashboard
	dataDir     string
	adminToken  string // "" when the dashboard is off
	newToken    bool   // the token was generated at this start: print it
	turnSecrets int
	started     time.Time
}

func newBox(cfg *config, src source, getenv func(string) string, logOut io.Writer) (*box, error) {
	b := &box{cfg: cfg, src: src, level: new(slog.LevelVar), reg: prometheus.NewRegistry(), sys: prometheus.NewRegistry(), started: time.Now()}
	lvl, _ := parseLevel(cfg.LogLevel)
	b.level.Set(lvl)
	opts := &slog.HandlerOptions{Level: b.level}
	if cfg.LogFormat == "json" {
		b.log = slog.New(slog.NewJSONHandler(logOut, opts))
	} else {
		b.log = slog.New(slog.NewTextHandler(logOut, opts))
	}
	b.sys.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The Go collector stays off the dashboard's gather: it reads memstats.
	goReg := prometheus.NewRegistry()
	goReg.MustRegister(collectors.NewGoCollector())
	b.gatherers = prometheus.Gatherers{b.reg, b.sys, goReg}
	if cfg.TLSCert != "" {
		if err := b.loadCert(); err != nil {
			return nil, err
		}
	}
	if cfg.ACMEDomain != "" {
		a, err := newACME(cfg, getenv)
		if err != nil {
			return nil, err
		}
		b.acme = a
	}
	t, err := signal.NewServer(signal.Config{
		Interval:         cfg.Interval,
		PeerTTL:          cfg.PeerTTL,
		IdleTimeout:      cfg.IdleTimeout,
		OfferTTL:         cfg.OfferTTL,
		MaxMessageBytes:  cfg.MaxMessageBytes,
		MaxOffers:        cfg.MaxOffers,
		MaxSDPBytes:      cfg.MaxSDPBytes,
		MaxSwarmsPerConn: cfg.MaxSwarmsPerConn,
		MaxConnsPerIP:    cfg.MaxConnsPerIP,
		AnnounceRate:     cfg.AnnounceRate,
		AnnounceBurst:    cfg.AnnounceBurst,
		WriteBufferBytes: cfg.WriteBufferBytes,
		Logger:           b.log,
		Registerer:       b.reg,
	})
	if err != nil {
		return nil, err
	}
	b.tracker = t
	if cfg.TURN {
		if b.ice, err = b.startTURN(getenv); err != nil {
			t.Close()
			return nil, err
		}
	}
	if cfg.Federation {
		if err = b.loadP2PKey(getenv); err == nil {
			err = b.startFederation()
		}
		if err != nil {
			b.close()
			return nil, fmt.Errorf("federation: %w", err)
		}
	}
	if cfg.Dashboard {
		if err := b.loadAdminToken(getenv); err != nil {
			b.close()
			return nil, err
		}
	}
	if cfg.Dashboard {
		b.samples = newSampler(prometheus.Gatherers{b.reg, b.sys}, sampleInterval)
	}
	return b, nil
}

// sampleInterval is how often the dashboard's figures are read.
var sampleInterval = time.Second

func (b *box) loadAdminToken(getenv func(string) string) error {
	dir, err := b.cfg.dataDir(getenv)
	b.dataDir = dir
	if b.cfg.AdminToken != "" {
		b.adminToken = b.cfg.AdminToken
		return nil
	}
	if err != nil {
		return err
	}
	b.adminToken, b.newToken, err = loadOrCreateToken(filepath.Join(dir, "admin-token"))
	return err
}

// tls reports whether -addr serves TLS (a certificate file or ACME).
func (b *box) tls() bool { return b.cfg.TLSCert != "" || b.acme != nil }

// close stops the components that run without a listener.
func (b *box) close() {
	b.stopFederation()
	b.tracker.Close()
	if b.turn != nil {
		b.turn.Close()
	}
	if b.acme != nil {
		b.acme.close()
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func (b *box) loadCert() error {
	c, err := tls.LoadX509KeyPair(b.cfg.TLSCert, b.cfg.TLSKey)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	b.cert.Store(&c)
	return nil
}

// reload applies what can change while running: the TLS certificate and the
// log level (from the config file).
func (b *box) reload() {
	if b.cfg.TLSCert != "" {
		if err := b.loadCert(); err != nil {
			b.log.Warn("reload: keeping the old certificate", "err", err)
		} else {
			b.log.Info("reloaded TLS certificate", "file", b.cfg.TLSCert)
		}
	}
	if b.cfg.ConfigFile != "" {
		var fresh config
		fs := flags(&fresh)
		if err := applyFile(fs, b.cfg.ConfigFile, source{}); err != nil {
			b.log.Warn("reload: config file not applied", "err", err)
			return
		}
		if lvl, err := parseLevel(fresh.LogLevel); err == nil && lvl != b.level.Level() && b.src["log-level"] != "flag" {
			b.level.Set(lvl)
			b.log.Info("reloaded log level", "level", lvl)
		}
	}
}

// handler routes WebSocket upgrades on any path to the tracker, as
// bittorrent-tracker allows, and everything else by path.
func (b *box) handler() http.Handler {
	mux := b.mux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			b.tracker.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (b *box) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if b.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.gatherers, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.tracker.Stats())
	})
	if b.ice != nil {
		mux.Handle("/ice", b.ice)
	}
	if b.cfg.Dashboard {
		b.mountDashboard(mux)
		b.mountPageConfig(mux)
		return mux
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Box Signal tracker. Give browsers this announce URL: %s\n", b.trackerURL(r.Host))
	})
	return mux
}

func (b *box) scheme() string {
	if b.tls() {
		return "wss"
	}
	return "ws"
}

func (b *box) trackerURL(hostport string) string {
	return fmt.Sprintf("%s://%s", b.scheme(), hostport)
}

// announceURLs are the URLs printed at start for browsers to use.
func (b *box) announceURLs(ln net.Addr) []string {
	_, port, _ := net.SplitHostPort(ln.String())
	host, _, _ := net.SplitHostPort(b.cfg.Addr)
	var hosts []string
	switch {
	case b.cfg.PublicHost != "":
		hosts = []string{b.cfg.PublicHost}
	case host != "" && host != "0.0.0.0" && host != "::":
		hosts = []string{host}
	default:
		hosts = []string{"localhost"}
		if name, err := os.Hostname(); err == nil && name != "" && name != "localhost" {
			hosts = append(hosts, name)
		}
	}
	var urls []string
	for _, h := range hosts {
		urls = append(urls, b.trackerURL(net.JoinHostPort(h, port)))
	}
	return urls
}

// serve runs until ctx is done, then drains.
func (b *box) serve(ctx context.Context, hup <-chan os.Signal, stdout io.Writer) error {
	ln, err := net.Listen("tcp", b.cfg.Addr)
	if err != nil {
		b.close()
		return fmt.Errorf("listen %s: %w", b.cfg.Addr, err)
	}
	if b.tls() {
		ln = tls.NewListener(ln, b.tlsConfig())
	}
	srv := &http.Server{
		Handler:           b.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	var stopHTTP01 func()
	if b.acme != nil && b.cfg.ACMEHTTPAddr != "" {
		if stopHTTP01, err = b.acme.serveHTTP01(b.cfg.ACMEHTTPAddr, b); err != nil {
			ln.Close()
			b.close()
			return err
		}
		defer stopHTTP01()
	}
	if b.samples != nil {
		go b.samples.run()
		defer b.samples.close()
	}
	urls := b.announceURLs(ln.Addr())
	b.log.Info("listening", "addr", ln.Addr().String(), "tls", b.tls(), "acme", b.cfg.ACMEDomain, "config", b.cfg.ConfigFile)
	fmt.Fprintf(stdout, "Box Signal tracker is up. Announce URLs for browsers:\n")
	for _, u := range urls {
		fmt.Fprintf(stdout, "  %s\n", u)
	}
	fmt.Fprintf(stdout, "Bugout: new Bugout(room, {announce: [%q]})\n", urls[0])
	if b.turn != nil {
		a := b.turn.Addrs()
		fmt.Fprintf(stdout, "STUN/TURN: udp %v tcp %v tls %v; ICE servers for pages: GET /ice\n", a.UDP, a.TCP, a.TLS)
	}
	switch {
	case b.federation() != nil:
		fmt.Fprintf(stdout, "Federation: peer ID %s on %v (signald friend list)\n", b.p2pID, b.federation().Host().Addrs())
	case b.cfg.Federation:
		fmt.Fprintf(stdout, "Federation: peer ID %s, off until a friend is added (signald friend add; then reload)\n", b.p2pID)
	}
	if b.cfg.Dashboard {
		web := "http"
		if b.tls() {
			web = "https"
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		fmt.Fprintf(stdout, "Dashboard: %s://%s/ (announce URLs and ICE servers for pages in one call: /box.json)\n", web, net.JoinHostPort(hostOf(urls[0]), port))
		switch {
		case b.newToken:
			fmt.Fprintf(stdout, "Admin token for the dashboard (shown once; kept in %s): %s\n", filepath.Join(b.dataDir, "admin-token"), b.adminToken)
		case b.cfg.AdminToken == "":
			fmt.Fprintf(stdout, "Admin token for the dashboard: in %s\n", filepath.Join(b.dataDir, "admin-token"))
		}
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	for {
		select {
		case <-hup:
			b.reload()
			b.reloadFriends()
			continue
		case err := <-errc:
			b.close()
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
		}
		break
	}
	b.log.Info("draining", "timeout", b.cfg.DrainTimeout)
	b.draining.Store(true)
	if b.samples != nil {
		b.samples.close() // ends the dashboards' live feeds, which Shutdown would wait for
	}
	dctx, cancel := context.WithTimeout(context.Background(), b.cfg.DrainTimeout)
	defer cancel()
	// Stop accepting first; upgraded connections are the tracker's to drain.
	herr := srv.Shutdown(dctx)
	b.stopFederation()
	terr := b.tracker.Shutdown(dctx)
	if b.turn != nil {
		terr = errors.Join(terr, b.turn.Close())
	}
	<-errc
	if errors.Is(terr, context.DeadlineExceeded) {
		b.log.Warn("drain timed out; remaining connections closed")
		terr = nil
	}
	b.log.Info("stopped")
	return errors.Join(herr, terr)
}

// hostOf is the host of a URL such as ws://host:port.
func hostOf(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	if h, _, err := net.SplitHostPort(rest); err == nil {
		return h
	}
	return rest
}
