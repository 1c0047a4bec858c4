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
	"strings"
	"sync/atomic"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/stunturn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// box is one running signald: the tracker and its HTTP surroundings.
type box struct {
	cfg      *config
	src      source
	log      *slog.Logger
	level    *slog.LevelVar
	reg      *prometheus.Registry
	tracker  *signal.Server
	turn     *stunturn.Server
	ice      http.Handler
	cert     atomic.Pointer[tls.Certificate]
	draining atomic.Bool
}

func newBox(cfg *config, src source, getenv func(string) string, logOut io.Writer) (*box, error) {
	b := &box{cfg: cfg, src: src, level: new(slog.LevelVar), reg: prometheus.NewRegistry()}
	lvl, _ := parseLevel(cfg.LogLevel)
	b.level.Set(lvl)
	opts := &slog.HandlerOptions{Level: b.level}
	if cfg.LogFormat == "json" {
		b.log = slog.New(slog.NewJSONHandler(logOut, opts))
	} else {
		b.log = slog.New(slog.NewTextHandler(logOut, opts))
	}
	b.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.TLSCert != "" {
		if err := b.loadCert(); err != nil {
			return nil, err
		}
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
	return b, nil
}

// close stops the components that run without a listener.
func (b *box) close() {
	b.tracker.Close()
	if b.turn != nil {
		b.turn.Close()
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

func (b *box) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if b.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(b.tracker.Stats())
	})
	if b.ice != nil {
		mux.Handle("/ice", b.ice)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// WebTorrent clients upgrade on any path, as bittorrent-tracker allows.
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			b.tracker.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Box Signal tracker. Give browsers this announce URL: %s\n", b.trackerURL(r.Host))
	})
	return mux
}

func (b *box) scheme() string {
	if b.cfg.TLSCert != "" {
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
	if b.cfg.TLSCert != "" {
		ln = tls.NewListener(ln, b.tlsConfig())
	}
	srv := &http.Server{
		Handler:           b.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	urls := b.announceURLs(ln.Addr())
	b.log.Info("listening", "addr", ln.Addr().String(), "tls", b.cfg.TLSCert != "", "config", b.cfg.ConfigFile)
	fmt.Fprintf(stdout, "Box Signal tracker is up. Announce URLs for browsers:\n")
	for _, u := range urls {
		fmt.Fprintf(stdout, "  %s\n", u)
	}
	fmt.Fprintf(stdout, "Bugout: new Bugout(room, {announce: [%q]})\n", urls[0])
	if b.turn != nil {
		a := b.turn.Addrs()
		fmt.Fprintf(stdout, "STUN/TURN: udp %v tcp %v tls %v; ICE servers for pages: GET /ice\n", a.UDP, a.TCP, a.TLS)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	for {
		select {
		case <-hup:
			b.reload()
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
	dctx, cancel := context.WithTimeout(context.Background(), b.cfg.DrainTimeout)
	defer cancel()
	// Stop accepting first; upgraded connections are the tracker's to drain.
	herr := srv.Shutdown(dctx)
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
