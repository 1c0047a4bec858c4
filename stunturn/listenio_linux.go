package stunturn

import (
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenerIO reads a UDP listening socket up to batchSize datagrams per
// recvmmsg, runs each through the fast paths (handle), and sends the
// Binding responses of a batch with one sendmmsg. Under load (several
// datagrams waiting) that is one syscall and one wake-up of the reading
// goroutine per batch instead of per datagram.
//
// It is used by one goroutine, the socket's reader (pion's read loop).
type listenerIO struct {
	rc     syscall.RawConn
	in     datagramBatch
	n, i   int   // datagrams in in, index of the next one
	err    error // of the last recvmmsg
	recv   func(fd uintptr) bool
	handle func(b []byte, from netip.AddrPort) bool
	out    *batchSender // Binding responses
	zones  zoneCache
}

// newListenerIO returns the batched reader of c, reading datagrams of up to
// size bytes, or nil if c offers no raw access. handle takes the datagrams
// of the fast paths: it reports whether it dealt with one. It must not keep
// b.
func newListenerIO(c *net.UDPConn, size int, handle func(b []byte, from netip.AddrPort) bool) *listenerIO {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	l := &listenerIO{rc: rc, in: newDatagramBatch(batchSize, size), handle: handle,
		out: newBatchSender(rc, bindingResponseMax)}
	l.recv = l.recvmmsg // a method value made once: no allocation per call
	return l
}

// next returns the next datagram handle did not take, and its source,
// valid until the next call. Before it waits for more datagrams, and
// before it returns, it sends the queued responses.
func (l *listenerIO) next() ([]byte, netip.AddrPort, error) {
	for {
		if l.i == l.n {
			l.out.flush()
			l.i, l.n, l.err = 0, 0, nil
			if err := l.rc.Read(l.recv); err != nil {
				return nil, netip.AddrPort{}, err
			}
			if l.err != nil {
				return nil, netip.AddrPort{}, l.err
			}
		}
		i := l.i
		l.i++
		b, from := l.in.bufs[i][:l.in.hdrs[i].Len], l.zones.addrPort(&l.in.names[i])
		if !l.handle(b, from) {
			l.out.flush() // pion may take a while (Allocate binds a socket)
			return b, from, nil
		}
	}
}

func (l *listenerIO) recvmmsg(fd uintptr) bool {
	n, errno := recvmmsg(int(fd), &l.in)
	switch errno {
	case 0:
		l.n = n
	case unix.EAGAIN:
		return false // wait in the netpoller
	default:
		l.err = os.NewSyscallError("recvmmsg", errno)
	}
	return true
}

// replyBuffer returns the buffer for a response to the datagram handle
// has, empty, with capacity bindingResponseMax.
func (l *listenerIO) replyBuffer() []byte {
	buf, _ := l.out.slot()
	return buf[:0]
}

// reply queues b, built in the buffer replyBuffer returned, to the source
// of the datagram handle has.
func (l *listenerIO) reply(b []byte) {
	_, name := l.out.slot()
	*name = l.in.names[l.i-1]
	l.out.commit(len(b), l.in.hdrs[l.i-1].Hdr.Namelen)
}
