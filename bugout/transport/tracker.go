package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// maxTrackerMessage bounds a tracker message (an offer's SDP is a few KiB).
const maxTrackerMessage = 256 << 10

var errNotConnected = errors.New("tracker not connected")

// tracker is one tracker URL: one WebSocket, redialled with backoff, shared
// by the rooms announcing there (§3.1 socketPool).
type tracker struct {
	t   *Transport
	url string
	log *slog.Logger

	mu    sync.Mutex
	conn  *websocket.Conn // nil while down
	gen   uint64          // bumped on each connect
	up    chan struct{}   // closed while connected
	rooms map[[20]byte]*announcer
}

func newTracker(t *Transport, u string) *tracker {
	return &tracker{t: t, url: u, log: t.log.With("tracker", u), up: make(chan struct{}), rooms: make(map[[20]byte]*announcer)}
}

// run dials, reads and redials until ctx ends.
func (tr *tracker) run(ctx context.Context) {
	cfg := &tr.t.cfg
	for failures := 0; ; {
		conn, _, err := websocket.Dial(ctx, tr.url, &websocket.DialOptions{HTTPClient: cfg.HTTPClient})
		if err == nil {
			conn.SetReadLimit(maxTrackerMessage)
			failures = 0
			tr.log.Info("tracker connected")
			tr.setConn(conn)
			err = tr.read(ctx, conn)
			tr.setConn(nil)
			conn.CloseNow()
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		wait := backoff(cfg.ReconnectMin, cfg.ReconnectMax, failures)
		if failures == 1 || failures%10 == 0 {
			tr.log.Warn("tracker connection lost; redialling", "err", err, "failures", failures, "wait", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// backoff is min·2^(n-1), at most max, plus up to 50 % jitter.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

func (tr *tracker) setConn(c *websocket.Conn) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.conn = c
	if c != nil {
		tr.gen++
		close(tr.up)
		for _, a := range tr.rooms {
			a.kick()
		}
	} else {
		tr.up = make(chan struct{})
	}
}

// current is the connection and its generation, or a channel closed when
// one comes up.
func (tr *tracker) current() (*websocket.Conn, uint64, <-chan struct{}) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.conn, tr.gen, tr.up
}

func (tr *tracker) read(ctx context.Context, conn *websocket.Conn) error {
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			continue
		}
		tr.handle(b)
	}
}

// handle dispatches one tracker message to its room.
func (tr *tracker) handle(b []byte) {
	m, err := decodeIncoming(b)
	if err != nil {
		tr.log.Debug("bad tracker message", "err", err)
		return
	}
	ih, err := parseBinary(m.InfoHash)
	if err != nil {
		if m.Failure != "" {
			tr.log.Warn("tracker failure", "reason", m.Failure)
		}
		return
	}
	tr.mu.Lock()
	a := tr.rooms[ih]
	tr.mu.Unlock()
	if a == nil {
		return // a room we left, or another client's on a shared socket
	}
	if m.Failure != "" {
		tr.log.Warn("tracker refused announce", "info_hash", fmt.Sprintf("%x", ih), "reason", m.Failure)
		return
	}
	if m.Warning != "" {
		tr.log.Debug("tracker warning", "info_hash", fmt.Sprintf("%x", ih), "warning", m.Warning)
	}
	if m.Interval > 0 || m.TrackerID != "" {
		a.update(time.Duration(m.Interval)*time.Second, m.TrackerID)
	}
	if m.Offer == nil && m.Answer == nil {
		return
	}
	from, err1 := parseBinary(m.PeerID)
	offerID, err2 := parseBinary(m.OfferID)
	if err1 != nil || err2 != nil {
		tr.log.Debug("relayed sdp without peer_id or offer_id")
		return
	}
	r := a.r
	if from == r.peerID {
		return
	}
	switch {
	case m.Offer != nil && m.Offer.Type == "offer":
		r.answer(tr, from, offerID, m.Offer.SDP)
	case m.Answer != nil && m.Answer.Type == "answer":
		r.accept(from, offerID, m.Answer.SDP)
	}
}

// send writes v on the current connection.
func (tr *tracker) send(ctx context.Context, v any) error {
	conn, _, _ := tr.current()
	if conn == nil {
		return errNotConnected
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(ctx, websocket.MessageText, b)
}

// add starts announcing r here.
func (tr *tracker) add(r *Room) *announcer {
	a := &announcer{tr: tr, r: r, interval: tr.t.cfg.AnnounceInterval, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	tr.mu.Lock()
	tr.rooms[r.infoHash] = a
	tr.mu.Unlock()
	go a.run()
	return a
}

func (tr *tracker) removeRoom(a *announcer) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.rooms[a.r.infoHash] == a {
		delete(tr.rooms, a.r.infoHash)
	}
}

// announcer announces one room on one tracker: started with offers on
// every (re)connect, again every interval, stopped when the room closes.
type announcer struct {
	tr   *tracker
	r    *Room
	wake chan struct{} // buffered 1: the connection or interval changed
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	interval  time.Duration
	trackerID string
}

func (a *announcer) kick() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *announcer) update(interval time.Duration, trackerID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if interval > 0 && interval != a.interval {
		a.interval = max(interval, 5*time.Second)
	}
	if trackerID != "" {
		a.trackerID = trackerID
	}
}

func (a *announcer) run() {
	defer close(a.done)
	var announcedGen uint64 // the connection generation we sent started on
	for {
		conn, gen, up := a.tr.current()
		if conn == nil {
			select {
			case <-a.stop:
				return
			case <-up:
				continue
			}
		}
		event := ""
		if gen != announcedGen {
			event = "started"
		}
		if err := a.announce(event); err != nil {
			a.tr.log.Debug("announce", "err", err)
		} else {
			announcedGen = gen
		}
		a.mu.Lock()
		interval := a.interval
		a.mu.Unlock()
		timer := time.NewTimer(interval)
		select {
		case <-a.stop:
			timer.Stop()
			return
		case <-a.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// announce sends an announce with fresh offers.
func (a *announcer) announce(event string) error {
	r := a.r
	offers := r.makeOffers()
	msg := a.base(event)
	msg.Numwant = intp(len(offers))
	for _, o := range offers {
		msg.Offers = append(msg.Offers, offerEntry{Offer: sdp{Type: "offer", SDP: o.sdp}, OfferID: binary(o.id)})
	}
	if err := a.tr.send(r.ctx, msg); err != nil {
		for _, o := range offers {
			o.c.close()
		}
		return err
	}
	return nil
}

func (a *announcer) base(event string) *announce {
	a.mu.Lock()
	tid := a.trackerID
	a.mu.Unlock()
	return &announce{
		Action:     "announce",
		InfoHash:   binary(a.r.infoHash),
		PeerID:     binary(a.r.peerID),
		Uploaded:   intp(0),
		Downloaded: intp(len(a.r.p.Identifier())),
		Left:       intp(0),
		Event:      event,
		TrackerID:  tid,
	}
}

// close stops announcing and sends stopped if connected.
func (a *announcer) close() {
	close(a.stop)
	<-a.done
	a.tr.removeRoom(a)
	msg := a.base("stopped")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.tr.send(ctx, msg); err != nil && !errors.Is(err, errNotConnected) {
		a.tr.log.Debug("announce stopped", "err", err)
	}
}
