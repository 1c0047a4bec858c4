package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// gobwasImpl is candidate B: github.com/gobwas/ws zero-copy upgrade plus a
// minimal epoll loop (EPOLLONESHOT). An idle connection has no goroutine;
// a readable connection gets a short-lived goroutine that reads one frame
// with the ordinary net.Conn (no user-space read buffer, so unread bytes stay
// in the kernel and re-arming the fd reports them again).
type gobwasImpl struct {
	ln    net.Listener
	epfd  int
	mu    sync.Mutex
	conns map[int32]*gobwasConn
	done  chan struct{}
	wg    sync.WaitGroup
}

type gobwasConn struct {
	fd  int32
	c   net.Conn
	wmu sync.Mutex
	// rmu orders the reads of one connection. EPOLLONESHOT already lets
	// only one goroutine read at a time, but through the kernel, where the
	// race detector cannot see it.
	rmu sync.Mutex
	p   *peer
}

const maxMessage = 64 << 10

var framePool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// sendText writes header+payload with one write; it blocks while the socket
// buffer is full (bounded by the write deadline).
func (g *gobwasConn) sendText(p []byte) error {
	return g.writeFrame(ws.NewTextFrame(p))
}

func (g *gobwasConn) writeFrame(f ws.Frame) error {
	b := framePool.Get().(*bytes.Buffer)
	defer framePool.Put(b)
	b.Reset()
	if err := ws.WriteFrame(b, f); err != nil {
		return err
	}
	g.wmu.Lock()
	defer g.wmu.Unlock()
	_ = g.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := g.c.Write(b.Bytes())
	return err
}

func (im *gobwasImpl) serve(ln net.Listener, h *hub) error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	im.ln, im.epfd, im.done = ln, epfd, make(chan struct{})
	im.conns = make(map[int32]*gobwasConn)
	im.wg.Go(func() { im.acceptLoop(h) })
	im.wg.Go(func() { im.pollLoop(h) })
	return nil
}

func (im *gobwasImpl) acceptLoop(h *hub) {
	for {
		c, err := im.ln.Accept()
		if err != nil {
			return
		}
		go im.handshake(c) // short-lived: ends after the upgrade
	}
}

func (im *gobwasImpl) handshake(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := ws.Upgrade(c); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		_ = c.Close()
		return
	}
	var fd int32
	_ = rc.Control(func(f uintptr) { fd = int32(f) })
	g := &gobwasConn{fd: fd, c: c}
	im.mu.Lock()
	im.conns[fd] = g
	im.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: fd}
	if err := unix.EpollCtl(im.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		im.close(g, nil)
	}
}

func (im *gobwasImpl) pollLoop(h *hub) {
	events := make([]unix.EpollEvent, 256)
	for {
		select {
		case <-im.done:
			return
		default:
		}
		n, err := unix.EpollWait(im.epfd, events, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for i := range n {
			im.mu.Lock()
			g := im.conns[events[i].Fd]
			im.mu.Unlock()
			if g != nil {
				go im.readOne(g, h)
			}
		}
	}
}

// readOne reads and handles one frame, then re-arms the fd or closes.
func (im *gobwasImpl) readOne(g *gobwasConn, h *hub) {
	g.rmu.Lock()
	defer g.rmu.Unlock()
	_ = g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr, err := ws.ReadHeader(g.c)
	if err != nil || hdr.Length > maxMessage || !hdr.Fin {
		im.close(g, h)
		return
	}
	buf := make([]byte, hdr.Length)
	if _, err := io.ReadFull(g.c, buf); err != nil {
		im.close(g, h)
		return
	}
	if hdr.Masked {
		ws.Cipher(buf, hdr.Mask, 0)
	}
	switch hdr.OpCode {
	case ws.OpText, ws.OpBinary:
		g.p = h.onMessage(g.p, g, buf)
	case ws.OpPing:
		_ = g.writeFrame(ws.NewPongFrame(buf))
	case ws.OpClose:
		_ = g.writeFrame(ws.NewCloseFrame(buf))
		im.close(g, h)
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: g.fd}
	if err := unix.EpollCtl(im.epfd, unix.EPOLL_CTL_MOD, int(g.fd), &ev); err != nil {
		im.close(g, h)
	}
}

func (im *gobwasImpl) close(g *gobwasConn, h *hub) {
	im.mu.Lock()
	if im.conns[g.fd] == g {
		delete(im.conns, g.fd)
		_ = unix.EpollCtl(im.epfd, unix.EPOLL_CTL_DEL, int(g.fd), nil)
	}
	im.mu.Unlock()
	if h != nil {
		h.remove(g.p)
	}
	_ = g.c.Close()
}

func (im *gobwasImpl) stop() {
	close(im.done)
	_ = im.ln.Close()
	im.wg.Wait()
	im.mu.Lock()
	conns := im.conns
	im.conns = map[int32]*gobwasConn{}
	im.mu.Unlock()
	for _, g := range conns {
		_ = g.c.Close()
	}
	_ = unix.Close(im.epfd)
}
