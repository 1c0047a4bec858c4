package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/boxsignal/boxsignal/bugout"
)

// ErrClosed is returned by Join on a closed Transport.
var ErrClosed = errors.New("bugout/transport: closed")

// ErrJoined is returned by Join for a room (infoHash) already joined.
var ErrJoined = errors.New("bugout/transport: room already joined")

// Transport keeps one WebSocket per tracker URL, shared by the rooms it
// joins, and makes their WebRTC connections. Safe for concurrent use.
type Transport struct {
	cfg Config
	log *slog.Logger
	api *webrtc.API
	ice *iceSource

	ctx    context.Context // cancelled by Close: ends the tracker loops
	cancel context.CancelFunc
	wg     sync.WaitGroup // tracker loops

	closeOnce sync.Once
	mu        sync.Mutex
	closed    bool
	trackers  []*tracker
	rooms     map[[20]byte]*Room
}

// New starts a Transport: it dials every tracker at once and keeps
// reconnecting, with backoff, until Close. It announces nothing until a
// room is joined.
func New(cfg Config) (*Transport, error) {
	cfg.setDefaults()
	if len(cfg.Trackers) == 0 {
		return nil, errors.New("bugout/transport: no tracker")
	}
	for _, u := range cfg.Trackers {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "ws" && pu.Scheme != "wss") || pu.Host == "" {
			return nil, fmt.Errorf("bugout/transport: tracker %q: want a ws:// or wss:// URL", u)
		}
	}
	if cfg.ICEURL != "" {
		if pu, err := url.Parse(cfg.ICEURL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") {
			return nil, fmt.Errorf("bugout/transport: ice url %q: want an http:// or https:// URL", cfg.ICEURL)
		}
	}
	t := &Transport{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "bugout-transport"),
		ice:   &iceSource{static: cfg.ICEServers, url: cfg.ICEURL, client: cfg.HTTPClient},
		rooms: make(map[[20]byte]*Room),
	}
	var se webrtc.SettingEngine
	se.DetachDataChannels()
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	if cfg.MulticastDNS {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeQueryOnly)
	} else {
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	}
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
	}
	t.api = webrtc.NewAPI(webrtc.WithSettingEngine(se))
	t.ctx, t.cancel = context.WithCancel(context.Background())
	for _, u := range cfg.Trackers {
		tr := newTracker(t, u)
		t.trackers = append(t.trackers, tr)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			tr.run(t.ctx)
		}()
	}
	t.log.Info("bugout transport started", "trackers", cfg.Trackers, "ice_servers", len(cfg.ICEServers), "ice_url", cfg.ICEURL != "")
	return t, nil
}

// Join announces p's room on every tracker and connects p to the peers
// met there until the Room is closed. The Transport does not close p.
func (t *Transport) Join(p *bugout.Peer) (*Room, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	ih := p.InfoHash()
	if t.rooms[ih] != nil {
		return nil, fmt.Errorf("%w: %x", ErrJoined, ih)
	}
	r := newRoom(t, p)
	t.rooms[ih] = r
	for _, tr := range t.trackers {
		r.announcers = append(r.announcers, tr.add(r))
	}
	t.log.Info("joined room", "info_hash", fmt.Sprintf("%x", ih), "address", string(p.Address()))
	return r, nil
}

func (t *Transport) remove(r *Room) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rooms[r.infoHash] == r {
		delete(t.rooms, r.infoHash)
	}
}

// Close leaves every room (announcing stopped), closes their connections
// and the tracker sockets, and waits for its goroutines. Idempotent.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		rooms := make([]*Room, 0, len(t.rooms))
		for _, r := range t.rooms {
			rooms = append(rooms, r)
		}
		t.mu.Unlock()
		var wg sync.WaitGroup
		for _, r := range rooms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.Close()
			}()
		}
		wg.Wait()
		t.cancel()
		t.wg.Wait()
		t.log.Info("bugout transport closed")
	})
	return nil
}

// JoinConfig configures Join.
type JoinConfig struct {
	Config
	// Peer is the room member to connect. Required. Join does not close it.
	Peer *bugout.Peer
}

// Join is the one-room shorthand: a Transport of its own that joins
// cfg.Peer's room. Closing the Room closes that Transport. ctx bounds the
// first fetch of cfg.ICEURL, if any, which must succeed.
func Join(ctx context.Context, cfg JoinConfig) (*Room, error) {
	if cfg.Peer == nil {
		return nil, errors.New("bugout/transport: no peer")
	}
	t, err := New(cfg.Config)
	if err != nil {
		return nil, err
	}
	if t.cfg.ICEURL != "" {
		if _, err := t.ice.servers(ctx); err != nil {
			t.Close()
			return nil, err
		}
	}
	r, err := t.Join(cfg.Peer)
	if err != nil {
		t.Close()
		return nil, err
	}
	r.owner = t
	return r, nil
}
