package main

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

type idleResult struct {
	Load           string  `json:"load"`
	Target         string  `json:"target"`
	Peers          int     `json:"peers"`
	Swarms         int     `json:"swarms"`
	Failed         int64   `json:"failed"`
	RSSBefore      int64   `json:"rss_before_bytes"`
	RSSAfter       int64   `json:"rss_after_bytes"`
	BytesPerPeer   float64 `json:"rss_bytes_per_peer"`
	RSSPer10kPeers float64 `json:"rss_mib_per_10k_peers"`
	ConnectSeconds float64 `json:"connect_seconds"`
}

// runIdle opens n WebSockets, announces each as a peer (no offers) in one of
// s swarms, holds them idle and reads the target's RSS.
func runIdle(ctx context.Context, args []string) (*idleResult, error) {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	n := fs.Int("n", 10000, "peers (this machine allows 20,000 open files per process)")
	swarms := fs.Int("swarms", 100, "swarms the peers spread over")
	targetURL := fs.String("target", "", "tracker to load (loopback only); default: start a fresh signald")
	pid := fs.Int("pid", 0, "PID of -target, to read its RSS")
	settle := fs.Duration("settle", 5*time.Second, "wait after the last announce before reading RSS")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on the whole run")
	conc := fs.Int("concurrency", 64, "connections opened at once")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *n < 1 || *n > 19000 {
		return nil, fmt.Errorf("-n %d: want 1..19000 (20,000 open files per process)", *n)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	t, stop, err := openTarget(ctx, *targetURL, *pid)
	if err != nil {
		return nil, err
	}
	defer stop()
	return idleLoad(ctx, t, *n, *swarms, *settle, *conc)
}

// idleLoad holds n announced peers open on t and reads its RSS.
func idleLoad(ctx context.Context, t *target, n, swarms int, settle time.Duration, conc int) (*idleResult, error) {
	time.Sleep(time.Second) // let a fresh process settle
	before, err := t.rss()
	if err != nil {
		return nil, err
	}

	conns := make([]net.Conn, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	start := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := idlePeer(ctx, t.url, i, swarms)
			if err != nil {
				failed.Add(1)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	connect := time.Since(start)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("connecting %d peers: %w", n, ctx.Err())
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after, err := t.rss()
	if err != nil {
		return nil, err
	}
	ok := int64(n) - failed.Load()
	per := float64(after-before) / float64(max(ok, 1))
	return &idleResult{
		Load: "idle", Target: t.url, Peers: n, Swarms: swarms, Failed: failed.Load(),
		RSSBefore: before, RSSAfter: after, BytesPerPeer: per, RSSPer10kPeers: per * 10000 / (1 << 20),
		ConnectSeconds: connect.Seconds(),
	}, nil
}

// idlePeer connects, announces like a browser that has joined a room
// (started, no offers) and waits for the reply.
func idlePeer(ctx context.Context, url string, i, swarms int) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, _, err := ws.Dial(dctx, url)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	ih := sha1.Sum(binary.BigEndian.AppendUint32([]byte("room"), uint32(i%swarms)))
	var peer wire.Hash
	copy(peer[:], fmt.Sprintf("-LT0001-%012d", i))
	msg, _ := json.Marshal(map[string]any{
		"action": "announce", "info_hash": binString(ih), "peer_id": binString(peer),
		"event": "started", "numwant": 0, "left": 0, "uploaded": 0, "downloaded": 0, "offers": []any{},
	})
	if err := wsutil.WriteClientText(c, msg); err != nil {
		c.Close()
		return nil, err
	}
	reply, err := wsutil.ReadServerText(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	var r struct {
		Interval int    `json:"interval"`
		Failure  string `json:"failure reason"`
	}
	if json.Unmarshal(reply, &r); r.Interval == 0 {
		c.Close()
		return nil, fmt.Errorf("announce refused: %s", reply)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// binString is a 20-byte value as the JSON string browsers send.
func binString(h [20]byte) string {
	r := make([]rune, len(h))
	for i, b := range h {
		r[i] = rune(b)
	}
	return string(r)
}
