package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// trackerResult is what one tracker load reports.
type trackerResult struct {
	Load             string         `json:"load"`
	Target           string         `json:"target"`
	Peers            int            `json:"peers"`
	Swarms           int            `json:"swarms"`
	OffersPerAnnounc int            `json:"offers_per_announce"`
	Mode             string         `json:"mode"` // "closed" or "rate"
	OfferedRate      float64        `json:"offered_announces_per_s,omitempty"`
	Seconds          float64        `json:"seconds"`
	Announces        int64          `json:"announces"`
	AnnouncesPerS    float64        `json:"announces_per_s"`
	OffersPerS       float64        `json:"offers_relayed_per_s"`
	AnswersPerS      float64        `json:"answers_relayed_per_s"`
	RTTms            map[string]any `json:"offer_answer_rtt_ms"`
	Failures         map[string]int `json:"failures"`
	TargetCPUSeconds float64        `json:"target_cpu_s"`
	TargetSysShare   float64        `json:"target_cpu_system_share"` // of target_cpu_s, spent in the kernel
	TargetCPUPerOff  float64        `json:"target_cpu_us_per_offer"`
	TargetRSS        int64          `json:"target_rss_bytes"`
	GenCPUSeconds    float64        `json:"generator_cpu_s"`
	GenCPUShare      float64        `json:"generator_cpu_cores"`
}

type trackerOpts struct {
	peers, swarms, offers, sdpBytes int
	duration, timeout               time.Duration
	rate                            float64
}

// runTracker parses the flags of the tracker load and runs it.
func runTracker(ctx context.Context, args []string) (*trackerResult, error) {
	fs := flag.NewFlagSet("tracker", flag.ContinueOnError)
	var o trackerOpts
	fs.IntVar(&o.peers, "peers", 1000, "simulated WebTorrent peers (one WebSocket each)")
	fs.IntVar(&o.swarms, "swarms", 100, "swarms the peers spread over")
	fs.IntVar(&o.offers, "offers", 5, "offers per announce (browsers send 5)")
	fs.IntVar(&o.sdpBytes, "sdp-bytes", 600, "size of each offer's and answer's SDP")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time")
	fs.Float64Var(&o.rate, "rate", 0, "announces per second in all; 0 = closed loop (each peer re-announces once its answers are in)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "bound on the whole run")
	targetURL := fs.String("target", "", "tracker to load (loopback only); default: start a fresh signald")
	pid := fs.Int("pid", 0, "PID of -target, to read its CPU and RSS")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.peers < 2 || o.peers > 19000 || o.swarms < 1 || o.offers < 0 || o.offers > 10 {
		return nil, fmt.Errorf("want 2 ≤ -peers ≤ 19000, -swarms ≥ 1, 0 ≤ -offers ≤ 10")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	t, stop, err := openTarget(ctx, *targetURL, *pid)
	if err != nil {
		return nil, err
	}
	defer stop()
	return trackerLoad(ctx, t, o)
}

// openTarget returns the given target, or starts a fresh signald.
func openTarget(ctx context.Context, url string, pid int) (*target, func(), error) {
	if url == "" {
		t, err := startSignald(ctx)
		if err != nil {
			return nil, nil, err
		}
		return t, t.stop, nil
	}
	if err := checkLoopback(url); err != nil {
		return nil, nil, err
	}
	if pid == 0 {
		return nil, nil, errors.New("-target needs -pid to read its CPU and RSS")
	}
	return &target{url: url, pid: pid}, func() {}, nil
}

// loadPeer is one simulated browser.
type loadPeer struct {
	id       [20]byte
	infoHash [20]byte
	conn     net.Conn
	wmu      sync.Mutex
	frame    []byte // the frame being written; guarded by wmu

	mu      sync.Mutex
	pending map[[20]byte]time.Time // offer_id → when its announce went out
	answers chan struct{}          // one token per answer, for the closed loop
}

// write sends b as one masked text frame in one write, as a browser does.
// (wsutil.WriteClientText writes the header and the payload with a write
// each: two TCP segments per message on loopback, which can cost the target
// two wake-ups and two reads per message that browsers do not cause.)
func (p *loadPeer) write(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	h := ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(len(b)), Masked: true, Mask: ws.NewMask()}
	var hdr bytes.Buffer
	if err := ws.WriteHeader(&hdr, h); err != nil {
		return err
	}
	p.frame = append(append(p.frame[:0], hdr.Bytes()...), b...)
	ws.Cipher(p.frame[hdr.Len():], h.Mask, 0)
	_, err := p.conn.Write(p.frame)
	return err
}

// stats are shared by every peer of a run.
type stats struct {
	announces, offers, answers atomic.Int64
	mu                         sync.Mutex
	rtts                       []time.Duration
	failures                   map[string]int
	measuring                  atomic.Bool
}

const maxRTTSamples = 4 << 20

func (s *stats) rtt(d time.Duration) {
	s.mu.Lock()
	if len(s.rtts) < maxRTTSamples {
		s.rtts = append(s.rtts, d)
	}
	s.mu.Unlock()
}

func (s *stats) failure(reason string) {
	s.mu.Lock()
	s.failures[reason]++
	s.mu.Unlock()
}

func trackerLoad(ctx context.Context, t *target, o trackerOpts) (*trackerResult, error) {
	// Fewer collections of the generator's own small heap: its GC pauses and
	// assists would show as round trips the target did not cause.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	sdp := strings.Repeat("a", max(o.sdpBytes-40, 0))
	offerSDP, _ := json.Marshal(map[string]string{"type": "offer", "sdp": "v=0\r\n" + sdp})
	answerSDP, _ := json.Marshal(map[string]string{"type": "answer", "sdp": "v=0\r\n" + sdp})
	st := &stats{failures: map[string]int{}}

	peers := make([]*loadPeer, o.peers)
	var wg sync.WaitGroup
	errc := make(chan error, o.peers)
	sem := make(chan struct{}, 64)
	for i := range peers {
		p := &loadPeer{pending: map[[20]byte]time.Time{}, answers: make(chan struct{}, 64)}
		copy(p.id[:], fmt.Sprintf("-LT0001-%012d", i))
		p.infoHash = sha1.Sum(binary.BigEndian.AppendUint32([]byte("room"), uint32(i%o.swarms)))
		peers[i] = p
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			c, _, _, err := ws.Dial(dctx, t.url)
			if err != nil {
				errc <- err
				return
			}
			p.conn = c
			msg, _ := json.Marshal(map[string]any{"action": "announce", "info_hash": binString(p.infoHash),
				"peer_id": binString(p.id), "event": "started", "left": 0, "numwant": 0, "offers": []any{}})
			if err := p.write(msg); err != nil {
				errc <- err
				return
			}
			if _, err := wsutil.ReadServerText(c); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	defer func() {
		for _, p := range peers {
			if p.conn != nil {
				p.conn.Close()
			}
		}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("joining %d peers: %w", o.peers, err)
	}

	// Readers: answer every offer at once, as a browser would (minus the
	// WebRTC work); time every answer.
	var readers sync.WaitGroup
	for _, p := range peers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			p.read(st, answerSDP)
		}()
	}

	runCtx, cancelRun := context.WithTimeout(ctx, o.duration)
	defer cancelRun()
	cpu0, err := t.cpuStart()
	if err != nil {
		return nil, err
	}
	gen0 := selfCPU()
	st.measuring.Store(true)
	start := time.Now()
	var writers sync.WaitGroup
	var seq atomic.Uint32
	announce := func(p *loadPeer) error {
		msg := make([]byte, 0, 256+o.offers*(len(offerSDP)+80))
		msg = fmt.Appendf(msg, `{"numwant":%d,"uploaded":0,"downloaded":0,"left":0,"action":"announce","info_hash":%s,"peer_id":%s,"offers":[`,
			o.offers, jsonString(binString(p.infoHash)), jsonString(binString(p.id)))
		now := time.Now()
		p.mu.Lock()
		for k := range o.offers {
			var oid [20]byte
			copy(oid[:4], p.id[16:20])
			binary.BigEndian.PutUint32(oid[4:], seq.Add(1))
			oid[8] = byte(k)
			p.pending[oid] = now
			if k > 0 {
				msg = append(msg, ',')
			}
			msg = fmt.Appendf(msg, `{"offer":%s,"offer_id":%s}`, offerSDP, jsonString(binString(oid)))
		}
		p.mu.Unlock()
		msg = append(msg, "]}"...)
		st.announces.Add(1)
		return p.write(msg)
	}
	if o.rate <= 0 {
		for _, p := range peers {
			writers.Add(1)
			go func() {
				defer writers.Done()
				for runCtx.Err() == nil {
					if err := announce(p); err != nil {
						return
					}
					p.awaitAnswers(runCtx, o.offers, time.Second)
				}
			}()
		}
	} else {
		writers.Add(1)
		go func() {
			defer writers.Done()
			interval := time.Duration(float64(time.Second) / o.rate)
			next := time.Now()
			for runCtx.Err() == nil {
				announce(peers[rand.IntN(len(peers))])
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
			}
		}()
	}
	writers.Wait()
	elapsed := time.Since(start)
	st.measuring.Store(false)
	cpu, sysShare := t.cpuSince(cpu0)
	gen1 := selfCPU()
	rss, _ := t.rss()
	time.Sleep(200 * time.Millisecond) // let in-flight answers land before closing
	for _, p := range peers {
		p.conn.Close()
	}
	readers.Wait()

	offers := st.offers.Load()
	res := &trackerResult{
		Load: "tracker", Target: t.url, Peers: o.peers, Swarms: o.swarms, OffersPerAnnounc: o.offers, Mode: "closed",
		Seconds: elapsed.Seconds(), Announces: st.announces.Load(),
		AnnouncesPerS: float64(st.announces.Load()) / elapsed.Seconds(),
		OffersPerS:    float64(offers) / elapsed.Seconds(),
		AnswersPerS:   float64(st.answers.Load()) / elapsed.Seconds(),
		RTTms:         percentiles(st.rtts), Failures: st.failures,
		TargetCPUSeconds: cpu.Seconds(), TargetSysShare: sysShare, TargetRSS: rss,
		GenCPUSeconds: (gen1 - gen0).Seconds(), GenCPUShare: (gen1 - gen0).Seconds() / elapsed.Seconds(),
	}
	if o.rate > 0 {
		res.Mode, res.OfferedRate = "rate", o.rate
	}
	if offers > 0 {
		res.TargetCPUPerOff = float64(cpu.Microseconds()) / float64(offers)
	}
	return res, nil
}

// awaitAnswers waits for n answers or the timeout (offers a tracker drops
// are never answered).
func (p *loadPeer) awaitAnswers(ctx context.Context, n int, timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for range n {
		select {
		case <-p.answers:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// incoming is the part of a tracker message the load generator looks at:
// raw JSON values, so that peer_id and offer_id go back into the answer
// without being decoded and encoded again.
type incoming struct {
	peerID, offerID, offer, answer, failure []byte
}

var incomingOpts = jsontext.AllowDuplicateNames(true)

func (m *incoming) parse(dec *jsontext.Decoder, b []byte) error {
	*m = incoming{}
	dec.Reset(bytes.NewBuffer(b), incomingOpts)
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return errors.New("not an object")
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		v, err := dec.ReadValue()
		if err != nil {
			return err
		}
		switch string(name) {
		case `"peer_id"`:
			m.peerID = v
		case `"offer_id"`:
			m.offerID = v
		case `"offer"`:
			m.offer = v
		case `"answer"`:
			m.answer = v
		case `"failure reason"`:
			m.failure = v
		}
	}
	return nil
}

func (p *loadPeer) read(st *stats, answerSDP []byte) {
	var m incoming
	dec := jsontext.NewDecoder(bytes.NewBuffer(nil))
	// The answer is the peer's fixed prefix, the offerer's raw peer_id, the
	// SDP and the raw offer_id.
	prefix := fmt.Appendf(nil, `{"action":"announce","info_hash":%s,"peer_id":%s,"to_peer_id":`,
		jsonString(binString(p.infoHash)), jsonString(binString(p.id)))
	// A buffered reader and a payload buffer per peer: wsutil's
	// ReadServerText reads each frame with two or three syscalls and
	// allocates each message, and the generator's syscalls and GC would be
	// counted in the round trips it measures.
	rd := wsutil.Reader{Source: bufio.NewReaderSize(p.conn, 4096), State: ws.StateClientSide,
		OnIntermediate: wsutil.ControlFrameHandler(p.conn, ws.StateClientSide)}
	var msg, b []byte
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			return
		}
		if hdr.OpCode.IsControl() {
			if err := rd.OnIntermediate(hdr, &rd); err != nil {
				return
			}
			continue
		}
		if hdr.OpCode != ws.OpText {
			if err := rd.Discard(); err != nil {
				return
			}
			continue
		}
		if b, err = readPayload(b[:0], &rd); err != nil {
			return
		}
		if err := m.parse(dec, b); err != nil {
			st.failure("generator: invalid JSON from tracker")
			continue
		}
		switch {
		case m.offer != nil:
			if st.measuring.Load() {
				st.offers.Add(1)
			}
			msg = append(msg[:0], prefix...)
			msg = append(msg, m.peerID...)
			msg = append(msg, `,"answer":`...)
			msg = append(msg, answerSDP...)
			msg = append(msg, `,"offer_id":`...)
			msg = append(msg, m.offerID...)
			msg = append(msg, '}')
			p.write(msg)
		case m.answer != nil:
			var oid [20]byte
			ok := len(m.offerID) > 2 && parseBin(m.offerID, &oid)
			p.mu.Lock()
			sent, known := p.pending[oid]
			delete(p.pending, oid)
			p.mu.Unlock()
			if ok && known && st.measuring.Load() {
				st.answers.Add(1)
				st.rtt(time.Since(sent))
			}
			select {
			case p.answers <- struct{}{}:
			default:
			}
		case m.failure != nil:
			var reason string
			json.Unmarshal(m.failure, &reason)
			st.failure(reason)
		}
	}
}

// readPayload appends the rest of the message rd is reading to b.
func readPayload(b []byte, rd *wsutil.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// parseBin reads a raw binary JSON string into h.
func parseBin(raw []byte, h *[20]byte) bool {
	u, err := jsontext.AppendUnquote(nil, raw)
	if err != nil {
		return false
	}
	var ok bool
	*h, ok = fromBinString(string(u))
	return ok
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func fromBinString(s string) ([20]byte, bool) {
	var h [20]byte
	n := 0
	for _, r := range s {
		if r > 0xFF || n == len(h) {
			return h, false
		}
		h[n] = byte(r)
		n++
	}
	return h, n == len(h)
}

func percentiles(d []time.Duration) map[string]any {
	if len(d) == 0 {
		return map[string]any{"samples": 0}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	return map[string]any{"samples": len(d), "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1)}
}
