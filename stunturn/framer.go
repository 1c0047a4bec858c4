package stunturn

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"time"
)

var (
	errBadFrame = errors.New("stunturn: stream carries neither STUN nor ChannelData")
	errBadPeer  = errors.New("stunturn: bad XOR-PEER-ADDRESS")
)

// Largest frame on a TURN stream: a STUN message (20-byte header and up to
// 65535 bytes of attributes) or ChannelData (4-byte header, 65535 bytes of
// data, padded to 4 on streams).
const maxFrame = 20 + 0xFFFF

// frameSize returns the length of the STUN or ChannelData frame at the start
// of b (RFC 8656 §12.5: on TCP and TLS, ChannelData is padded to a multiple
// of four). It returns 0, nil if b holds too little to tell.
func frameSize(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, nil
	}
	switch b[0] >> 6 {
	case 1: // ChannelData
		n := int(binary.BigEndian.Uint16(b[2:4]))
		return 4 + (n+3)&^3, nil
	case 0: // STUN
		if len(b) < 8 {
			return 0, nil
		}
		if binary.BigEndian.Uint32(b[4:8]) != 0x2112A442 {
			return 0, errBadFrame
		}
		return 20 + int(binary.BigEndian.Uint16(b[2:4])), nil
	}
	return 0, errBadFrame
}

// framer splits a TURN byte stream into frames. Each call to next returns one
// whole frame, so that the guard can look at it before pion does.
type framer struct {
	buf []byte // unread bytes, starting at a frame boundary
}

// next returns the next complete frame in f.buf and removes it, or nil.
func (f *framer) next() ([]byte, error) {
	n, err := frameSize(f.buf)
	if err != nil || n == 0 || len(f.buf) < n {
		return nil, err
	}
	frame := f.buf[:n:n]
	f.buf = f.buf[n:]
	return frame, nil
}

// framedConn is a client's TCP or TLS connection as pion sees it. Read
// returns exactly one frame at a time, after the guard has admitted it, so
// that pion's STUNConn never buffers ahead of the guard. After a
// ConnectionBind (RFC 6062) the connection carries raw peer data and Read
// passes it through.
type framedConn struct {
	net.Conn          // the TLS or TCP conn
	raw      net.Conn // the TCP conn underneath, tracked by the server
	s        *Server
	idle     time.Duration // read deadline while framing

	f        framer
	out      []byte // rest of a frame larger than the caller's buffer
	passthru bool
	tls      *tls.Conn
	shook    bool
}

func (c *framedConn) reply(b []byte, _ net.Addr) {
	_, _ = c.Conn.Write(b)
}

func (c *framedConn) Read(p []byte) (int, error) {
	if c.tls != nil && !c.shook {
		ctx, cancel := context.WithTimeout(c.s.ctx, 10*time.Second)
		err := c.tls.HandshakeContext(ctx)
		cancel()
		if err != nil {
			return 0, err
		}
		c.shook = true
	}
	if len(c.out) > 0 {
		n := copy(p, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	if c.passthru {
		if len(c.f.buf) > 0 {
			n := copy(p, c.f.buf)
			c.f.buf = c.f.buf[n:]
			return n, nil
		}
		return c.Conn.Read(p)
	}
	var tmp [4096]byte
	for {
		frame, err := c.f.next()
		if err != nil {
			return 0, err
		}
		if frame == nil {
			if len(c.f.buf) > maxFrame+len(tmp) {
				return 0, errBadFrame
			}
			if c.idle > 0 {
				_ = c.raw.SetReadDeadline(time.Now().Add(c.idle))
			}
			n, err := c.Conn.Read(tmp[:])
			c.f.buf = append(c.f.buf, tmp[:n]...)
			if n == 0 && err != nil {
				return 0, err
			}
			continue
		}
		if !c.s.admit(frame, c.RemoteAddr(), c.LocalAddr(), c) {
			continue
		}
		if isConnectionBind(frame) {
			// The rest of the stream is peer data; no deadline either,
			// since a relayed TCP connection may idle for long.
			c.passthru = true
			_ = c.raw.SetReadDeadline(time.Time{})
		}
		n := copy(p, frame)
		c.out = frame[n:]
		return n, nil
	}
}

// isConnectionBind reports whether a STUN frame is a ConnectionBind request
// (method 0x000b, class request).
func isConnectionBind(b []byte) bool {
	return len(b) >= 2 && !isChannelData(b) && binary.BigEndian.Uint16(b[0:2]) == 0x000b
}

func (c *framedConn) Close() error {
	err := c.Conn.Close()
	c.s.untrackConn(c.raw)
	return err
}
