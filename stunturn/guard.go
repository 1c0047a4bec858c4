package stunturn

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// The guard sees every message a client sends before pion does (UDP
// datagrams in guardedPacketConn.ReadFrom, TCP/TLS frames in framedConn). It
//   - rate-limits, per source IP, requests that would be answered without a
//     valid MESSAGE-INTEGRITY (Binding, the first Allocate, 401s);
//   - picks which of several REST secrets signed a request (pion's
//     AuthHandler can return only one key);
//   - refuses CreatePermission, ChannelBind and Connect to filtered peers
//     with 403 and over MaxPermissions with 508, both with
//     MESSAGE-INTEGRITY, before pion acts on them. pion's PermissionHandler
//     applies the same filter again as a second line.
// ChannelData, the bulk of the traffic, is passed after a one-byte check.

// replier sends a response on the transport a message came in on.
type replier interface {
	reply(b []byte, to net.Addr)
}

// authMethods are the methods pion authenticates.
var authMethods = map[stun.Method]bool{
	stun.MethodAllocate: true, stun.MethodRefresh: true, stun.MethodCreatePermission: true,
	stun.MethodChannelBind: true, stun.MethodConnect: true, stun.MethodConnectionBind: true,
}

// isChannelData reports whether b starts like a ChannelData message (first two
// bits 01; RFC 8656 §12.4).
func isChannelData(b []byte) bool { return len(b) >= 4 && b[0]&0xC0 == 0x40 }

// admit reports whether the message b from src, received on the listener
// whose address is local, should be handed to pion. When it returns false it
// has dealt with the message itself (answered or dropped it).
func (s *Server) admit(b []byte, src, local net.Addr, r replier) bool {
	if isChannelData(b) {
		return true
	}
	if !stun.IsMessage(b) {
		return false // neither STUN nor ChannelData: pion would drop it too
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		return false
	}
	if m.Type.Class != stun.ClassRequest {
		return true // Send indications; pion checks their permission
	}
	if m.Type.Method == stun.MethodBinding || !m.Contains(stun.AttrMessageIntegrity) {
		return s.chargeUnauth(src)
	}
	if !authMethods[m.Type.Method] || s.auth == nil {
		return true
	}
	key, ok := s.verify(m, src)
	if !ok {
		return s.chargeUnauth(src) // pion answers 401 and counts the failure
	}
	switch m.Type.Method {
	case stun.MethodCreatePermission, stun.MethodChannelBind, stun.MethodConnect:
		return s.checkPeers(m, key, src, local, r)
	}
	return true
}

func (s *Server) chargeUnauth(src net.Addr) bool {
	if s.unauth.allow(src) {
		return true
	}
	s.m.dropUnauth.Inc()
	return false
}

// verify checks m's MESSAGE-INTEGRITY against every key its username may
// have and returns the one that matched. When that is not the first key
// (an older REST secret), it is left for authHandler in s.stash.
func (s *Server) verify(m *stun.Message, src net.Addr) ([]byte, bool) {
	var user stun.Username
	var realm stun.Realm
	if user.GetFrom(m) != nil || realm.GetFrom(m) != nil {
		return nil, false
	}
	keys, _ := s.auth.keys(user.String(), realm.String(), time.Now())
	for i, k := range keys {
		if stun.MessageIntegrity(k).Check(m) == nil {
			if i > 0 {
				s.stashKey(src, user.String(), k)
			}
			return k, true
		}
	}
	return nil, false
}

// maxStash bounds s.stash; entries are consumed by the AuthHandler call that
// follows on the same goroutine, so it only grows if pion skips that call.
const maxStash = 4096

func stashID(src net.Addr, username string) string { return src.String() + "\x00" + username }

func (s *Server) stashKey(src net.Addr, username string, key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stash) >= maxStash {
		clear(s.stash)
	}
	s.stash[stashID(src, username)] = key
}

func (s *Server) takeStashedKey(src net.Addr, username string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := stashID(src, username)
	k := s.stash[id]
	delete(s.stash, id)
	return k
}

// checkPeers applies the peer filter and MaxPermissions to an authenticated
// CreatePermission, ChannelBind or Connect.
func (s *Server) checkPeers(m *stun.Message, key []byte, src, local net.Addr, r replier) bool {
	akey := allocKey(src, local)
	if !s.allocs.exists(akey) {
		return true // pion answers "no allocation"
	}
	var peers []netip.Addr
	err := m.ForEach(stun.AttrXORPeerAddress, func(m *stun.Message) error {
		var xa stun.XORMappedAddress
		if err := xa.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
			return err
		}
		a, ok := netip.AddrFromSlice(xa.IP)
		if !ok {
			return errBadPeer
		}
		peers = append(peers, a)
		return nil
	})
	if err != nil || len(peers) == 0 {
		return true // pion answers 400
	}
	for _, p := range peers {
		if reason := s.filter.checkAddr(p); reason != reasonNone {
			s.peerDenied(reason, src, p)
			s.replyError(m, key, stun.CodeForbidden, src, r)
			return false
		}
	}
	if m.Type.Method == stun.MethodConnect {
		return true
	}
	var channel uint16
	if m.Type.Method == stun.MethodChannelBind {
		v, err := m.Get(stun.AttrChannelNumber)
		if err != nil || len(v) < 2 {
			return true // pion answers 400
		}
		channel = binary.BigEndian.Uint16(v)
	}
	for i := range peers {
		peers[i] = peers[i].Unmap()
	}
	if q := s.allocs.overQuota(akey, s.cfg.MaxPermissions, peers, channel); q != "" {
		s.m.quotaRejections.WithLabelValues(q).Inc()
		s.log.Debug("quota reached", "quota", q, "client", src, "method", m.Type.Method.String())
		s.replyError(m, key, stun.CodeInsufficientCapacity, src, r)
		return false
	}
	return true
}

func (s *Server) replyError(m *stun.Message, key []byte, code stun.ErrorCode, to net.Addr, r replier) {
	resp, err := stun.Build(&stun.Message{TransactionID: m.TransactionID},
		stun.NewType(m.Type.Method, stun.ClassErrorResponse), code, stun.MessageIntegrity(key))
	if err != nil {
		return
	}
	r.reply(resp.Raw, to)
}

// peerDenied counts and logs a refused peer. The first refusal in a minute
// is logged at Warn, so an operator notices a LAN that needs AllowPeers
// (or an attack); the rest at Debug.
func (s *Server) peerDenied(reason denyReason, client net.Addr, peer netip.Addr) {
	s.m.deniedPeers.WithLabelValues(string(reason)).Inc()
	level := slog.LevelDebug
	if s.warnDenied.ok(time.Now()) {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "peer refused", "reason", string(reason),
		"client", client.String(), "peer", peer.String())
}

// everyMinute lets one event through per minute. Safe for concurrent use.
type everyMinute struct{ last atomic.Int64 }

func (e *everyMinute) ok(now time.Time) bool {
	last := e.last.Load()
	if now.UnixNano()-last < int64(time.Minute) {
		return false
	}
	return e.last.CompareAndSwap(last, now.UnixNano())
}
