package signal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// A loop is an event loop: one goroutine that reads the sockets of its
// connections, runs their handlers and writes what the handlers queued.
//
// Its epoll instance is itself registered with the Go runtime's network
// poller, so a loop with nothing to do is a parked goroutine, not a thread
// blocked in epoll_wait: waking it is the runtime's ordinary netpoll, and no
// thread hand-off or sysmon retake is paid per wake-up.
//
// A turn reads every socket epoll reports ready and serves the frames read;
// then every connection the handlers queued frames for is written to once.
// So a connection that is sent several frames in one turn (offers and
// answers from several peers) costs one write, not one per frame.
type loop struct {
	srv  *Server
	epfd int
	file *os.File // epfd in the runtime's poller
	done chan struct{}

	mu      sync.Mutex
	conns   map[int32]*conn // by socket
	stopped bool

	// Used by the loop's goroutine only.
	events []unix.EpollEvent
	buf    []byte  // read buffer: room for a whole frame plus a read
	dirty  []*conn // connections with frames queued in this turn
	fr     frameReader
}

// readChunk is the most a loop reads from one socket in one turn.
const readChunk = 64 << 10

var (
	errInterrupted = unix.EINTR
	errWouldBlock  = unix.EAGAIN
)

func newLoop(s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	l := &loop{
		srv:    s,
		epfd:   epfd,
		file:   os.NewFile(uintptr(epfd), "signal-epoll"),
		done:   make(chan struct{}),
		conns:  make(map[int32]*conn),
		events: make([]unix.EpollEvent, 256),
		buf:    make([]byte, ws.MaxHeaderSize+s.cfg.MaxMessageBytes+readChunk),
	}
	rc, err := l.file.SyscallConn()
	if err != nil {
		l.file.Close()
		return nil, fmt.Errorf("epoll: %w", err)
	}
	go func() {
		defer close(l.done)
		// Read calls turns whenever the runtime's poller reports epfd
		// readable, until the file is closed.
		rc.Read(l.turns)
	}()
	return l, nil
}

// turns runs turns until no socket is ready, then returns false so that the
// goroutine parks until one is.
func (l *loop) turns(uintptr) bool {
	for turn := 1; ; turn++ {
		n, err := pollNow(l.epfd, l.events)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 {
			return false
		}
		more := false
		for i := range l.events[:n] {
			ev := &l.events[i]
			l.mu.Lock()
			c := l.conns[ev.Fd]
			l.mu.Unlock()
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.writable()
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				more = l.read(c) || more
			}
		}
		l.flush()
		// The runtime's poller sees epfd edge-triggered: it reports new
		// events, not ones left over. So park only when epoll has given
		// everything: a full batch, or a socket with more to read than was
		// read, means another turn now.
		if n < len(l.events) && !more {
			return false
		}
		if turn%16 == 0 {
			// A long busy spell lets other goroutines have the P now and
			// then: sysmon, which would preempt us, may be asleep (see
			// sendNoSignal).
			runtime.Gosched()
		}
	}
}

// flush writes every connection that was queued frames in this turn.
func (l *loop) flush() {
	for i, c := range l.dirty {
		c.flush()
		l.dirty[i] = nil
	}
	l.dirty = l.dirty[:0]
}

// read reads what a ready socket has and serves the frames in it. It
// reports whether the socket may hold more than was read.
func (l *loop) read(c *conn) (more bool) {
	k := copy(l.buf, c.partial)
	c.partial = nil
	n, err := readNow(c.fd, l.buf[k:])
	if n <= 0 {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			c.partial = append([]byte(nil), l.buf[:k]...)
			return false
		}
		l.closeConn(c) // end of stream, or an error
		return false
	}
	data := l.buf[:k+n]
	used, closing := c.consume(l, &l.fr, data)
	if closing {
		l.closeConn(c)
		return false
	}
	if used < len(data) {
		c.partial = append([]byte(nil), data[used:]...)
	}
	return n == len(l.buf)-k
}

// attach moves c's socket fd onto the loop. The caller owns fd until attach
// succeeds.
func (l *loop) attach(c *conn, fd int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return net.ErrClosed
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if c.waitOut {
		events |= unix.EPOLLOUT
	}
	l.conns[int32(fd)] = c
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		delete(l.conns, int32(fd))
		return fmt.Errorf("epoll add: %w", err)
	}
	c.lp, c.fd = l, fd
	return nil
}

// watchWritable turns waiting for c's socket to drain on or off; c.wmu is
// held.
func (l *loop) watchWritable(c *conn, on bool) {
	events := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		events |= unix.EPOLLOUT
	}
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: events, Fd: int32(c.fd)})
}

// closeConn closes c's socket, after one try at writing what is queued (a
// close frame, usually), and cleans up. Only the loop closes its sockets, so
// an fd it knows is never one the kernel has handed out again.
func (l *loop) closeConn(c *conn) {
	l.mu.Lock()
	if l.conns[int32(c.fd)] == c {
		delete(l.conns, int32(c.fd))
	}
	l.mu.Unlock()
	c.wmu.Lock()
	if c.fdClosed {
		c.wmu.Unlock()
		return
	}
	if c.out != nil && !c.waitOut {
		sendNoSignal(c.fd, (*c.out)[c.sent:])
	}
	c.closing, c.fdClosed = true, true
	c.dropOutLocked()
	unix.Close(c.fd)
	c.wmu.Unlock()
	c.partial, c.msg = nil, nil
	l.srv.finish(c)
}

// stop ends the loop's goroutine and closes every connection it had.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.file.Close() // the goroutine's Read returns; epfd is closed
	<-l.done
	l.mu.Lock()
	rest := make([]*conn, 0, len(l.conns))
	for _, c := range l.conns {
		rest = append(rest, c)
	}
	l.mu.Unlock()
	for _, c := range rest {
		l.closeConn(c)
	}
}

// The loop's own syscalls (sendNoSignal, pollNow, readNow) never block: its
// sockets are non-blocking and its epoll_wait does not wait. So they are
// raw, without the runtime's entersyscall/exitsyscall. Besides saving that
// bookkeeping, this keeps sysmon asleep: a process whose Ps all went idle
// (the loop parked) wakes sysmon at its next entersyscall, and sysmon then
// polls every 20 µs until it has seen a millisecond with nothing to retake.
// A loop parks and wakes many times a millisecond under load, so sysmon's
// sleeps were a tenth of signald's CPU.

// sendNoSignal writes b to a socket; a peer that has gone is an EPIPE
// error, not a SIGPIPE.
func sendNoSignal(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
	return rawResult(r, e)
}

// pollNow is epoll_wait with a zero timeout.
func pollNow(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return rawResult(r, e)
}

// readNow reads from a non-blocking socket.
func readNow(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return rawResult(r, e)
}

func rawResult(r uintptr, e unix.Errno) (int, error) {
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// shutdownSocket shuts a socket down both ways: its loop sees it readable,
// reads the end of the stream and closes it.
func shutdownSocket(fd int) { unix.Shutdown(fd, unix.SHUT_RDWR) }

// socketOf takes the socket out of a TCP connection for an event loop: it
// returns a duplicate of its descriptor and closes the connection, or
// fails, leaving nc as it was.
func socketOf(nc net.Conn) (int, bool) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return 0, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || fd < 0 {
		return 0, false
	}
	// The duplicate shares the socket's non-blocking mode; closing the
	// original leaves the socket open.
	tc.Close()
	return fd, true
}

func closeFD(fd int) { unix.Close(fd) }
