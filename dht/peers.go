package dht

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// dialer keeps a connection open to every friend with a known address,
// redialling with backoff (1 s doubling to 60 s).
func (n *Node) dialer() {
	defer n.wg.Done()
	type state struct {
		next    time.Time
		backoff time.Duration
		busy    bool
	}
	type result struct {
		id  peer.ID
		err error
	}
	states := map[peer.ID]*state{}
	done := make(chan result)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		now := time.Now()
		for _, f := range *n.friends.Load() {
			st := states[f.ID]
			if st == nil {
				st = &state{backoff: time.Second}
				states[f.ID] = st
			}
			if st.busy || len(f.Addrs) == 0 || now.Before(st.next) || n.connected(f.ID) {
				continue
			}
			st.busy = true
			ai := peer.AddrInfo{ID: f.ID, Addrs: f.Addrs}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
				err := n.h.Connect(ctx, ai)
				cancel()
				select {
				case done <- result{ai.ID, err}:
				case <-n.ctx.Done():
				}
			}()
		}
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		case r := <-done:
			st := states[r.id]
			st.busy = false
			if r.err == nil {
				st.backoff = time.Second
				continue
			}
			st.next = time.Now().Add(st.backoff)
			st.backoff = min(2*st.backoff, time.Minute)
			if f := n.friend(r.id); f != nil {
				n.log.Debug("cannot reach friend", "box", f.Name, "err", r.err, "retry_in", st.backoff)
			}
		}
	}
}

// notifiee tells friends this Box's rooms when they connect, and forgets
// what a Box said when its last connection closes.
type notifiee Node

func (nn *notifiee) Listen(network.Network, ma.Multiaddr)      {}
func (nn *notifiee) ListenClose(network.Network, ma.Multiaddr) {}

func (nn *notifiee) Connected(_ network.Network, c network.Conn) {
	n := (*Node)(nn)
	p := c.RemotePeer()
	f := n.friend(p)
	if f == nil {
		return
	}
	n.h.ConnManager().Protect(p, "friend")
	n.log.Info("friend connected", "box", f.Name, "addr", c.RemoteMultiaddr())
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range n.rooms {
		if r.local > 0 {
			n.sendLocked(p, &msg{kind: kindWant, key: r.key, peers: uint32(r.local), ttl: uint32(n.cfg.InterestTTL / time.Second)})
		}
	}
}

func (nn *notifiee) Disconnected(_ network.Network, c network.Conn) {
	n := (*Node)(nn)
	p := c.RemotePeer()
	if len(n.h.Network().ConnsToPeer(p)) > 0 {
		return
	}
	if f := n.friend(p); f != nil {
		n.log.Info("friend disconnected", "box", f.Name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.forgetBoxLocked(p)
	if l := n.links[p]; l != nil {
		delete(n.links, p)
		l.stop()
	}
}
