package stunturn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The Linux datagram plumbing of the fast paths: batches for recvmmsg and
// sendmmsg, and the syscalls themselves.
//
// The syscalls are made with RawSyscall6: every socket here is
// non-blocking and every call is MSG_DONTWAIT (waiting is left to Go's
// netpoller, through syscall.RawConn), so none of them blocks. A plain
// Syscall6 tells the scheduler the thread may block: at hundreds of
// thousands of calls a second that bookkeeping, and the hand-offs of Ps
// that the runtime's monitor makes when a call happens to span one of its
// ticks, cost more than the work.

// batchSize is the number of datagrams one recvmmsg reads, or one sendmmsg
// sends, at most.
const batchSize = 32

// datagramBatch is the memory recvmmsg and sendmmsg work on: a header, an
// iovec, an address and a buffer per datagram.
type datagramBatch struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family
	bufs  [][]byte
}

func newDatagramBatch(n, size int) datagramBatch {
	b := datagramBatch{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		bufs:  make([][]byte, n),
	}
	mem := make([]byte, n*size)
	for i := range n {
		b.bufs[i] = mem[i*size : (i+1)*size : (i+1)*size]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(size)
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

// recvmmsg reads up to len(b.hdrs) datagrams from fd into b.
func recvmmsg(fd int, b *datagramBatch) (int, unix.Errno) {
	for i := range b.hdrs {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].Hdr.Flags = 0
	}
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
	}
}

// sendto sends p to the address in sa (salen bytes of it) on fd.
func sendto(fd int, p []byte, sa *unix.RawSockaddrInet6, salen uint32) unix.Errno {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(base), uintptr(len(p)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(sa)), uintptr(salen))
		if errno != unix.EINTR {
			return errno
		}
	}
}

// epollWait returns the ready events of the epoll set epfd without waiting.
func epollWait(epfd int, events []unix.EpollEvent) int {
	for {
		// epoll_pwait with no signal mask is epoll_wait, which arm64 lacks.
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
			uintptr(len(events)), 0, 0, 0)
		if errno != unix.EINTR {
			if errno != 0 {
				return 0
			}
			return int(n)
		}
	}
}

// putSockaddr writes to as a socket address of family (AF_INET or
// AF_INET6; an IPv4 address for AF_INET6 as ::ffff:a.b.c.d), with the
// interface index scope for a link-local IPv6 address, into sa and returns
// its length, or 0 if to does not fit family.
func putSockaddr(sa *unix.RawSockaddrInet6, family int, to netip.AddrPort, scope uint32) uint32 {
	b := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	*sa = unix.RawSockaddrInet6{Family: uint16(family)}
	binary.BigEndian.PutUint16(b[2:4], to.Port())
	a := to.Addr().Unmap()
	if family == unix.AF_INET {
		if !a.Is4() {
			return 0
		}
		v4 := a.As4()
		copy(b[4:8], v4[:])
		return unix.SizeofSockaddrInet4
	}
	sa.Addr = a.As16()
	sa.Scope_id = scope
	return unix.SizeofSockaddrInet6
}

// socketFamily returns the address family of the socket behind rc.
func socketFamily(rc syscall.RawConn) (int, error) {
	family := 0
	var serr error
	err := rc.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if sa, serr = unix.Getsockname(int(fd)); serr == nil {
			if _, ok := sa.(*unix.SockaddrInet4); ok {
				family = unix.AF_INET
			} else {
				family = unix.AF_INET6
			}
		}
	})
	if err == nil {
		err = serr
	}
	return family, err
}

// batchSender queues datagrams for one socket and sends them with
// sendmmsg. Not safe for concurrent use; the socket's write lock (taken by
// RawConn.Write) orders it with the socket's other writers.
type batchSender struct {
	rc   syscall.RawConn
	out  datagramBatch
	k    int // queued
	sent int // of those, sent by the flush under way
	send func(fd uintptr) bool
}

func newBatchSender(rc syscall.RawConn, size int) *batchSender {
	b := &batchSender{rc: rc, out: newDatagramBatch(batchSize, size)}
	b.send = b.sendmmsg // a method value made once: no allocation per flush
	return b
}

// slot returns the next free datagram's buffer (full length) and address,
// flushing first when the batch is full. Queue it with commit.
func (b *batchSender) slot() ([]byte, *unix.RawSockaddrInet6) {
	if b.k == len(b.out.hdrs) {
		b.flush()
	}
	return b.out.bufs[b.k], &b.out.names[b.k]
}

// commit queues the datagram slot returned: n bytes to its address, namelen
// bytes long.
func (b *batchSender) commit(n int, namelen uint32) {
	b.out.iovs[b.k].SetLen(n)
	b.out.hdrs[b.k].Hdr.Namelen = namelen
	b.k++
}

// flush sends what is queued. A datagram the kernel refuses (no route, say)
// is dropped, as a failed sendto would be; a full socket buffer is waited
// out in the netpoller.
func (b *batchSender) flush() {
	for b.sent = 0; b.sent < b.k; {
		if err := b.rc.Write(b.send); err != nil {
			break // closed
		}
	}
	b.k = 0
}

func (b *batchSender) sendmmsg(fd uintptr) bool {
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out.hdrs[b.sent])),
		uintptr(b.k-b.sent), unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case 0:
		b.sent += int(n)
	case unix.EINTR:
	case unix.EAGAIN:
		return false
	default:
		b.sent++ // the first datagram failed: drop it
	}
	return true
}

// zoneCache converts source addresses as the kernel writes them, naming
// IPv6 scope IDs as package net does. Link-local sources are rare and the
// interface lookup is not free, so names are cached. Not safe for
// concurrent use.
type zoneCache map[uint32]string

func (z *zoneCache) addrPort(rsa *unix.RawSockaddrInet6) netip.AddrPort {
	b := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(rsa))
	port := binary.BigEndian.Uint16(b[2:4])
	if rsa.Family == unix.AF_INET {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	}
	a := netip.AddrFrom16(rsa.Addr)
	if rsa.Scope_id != 0 {
		a = a.WithZone(z.name(rsa.Scope_id))
	}
	return netip.AddrPortFrom(a, port)
}

func (z *zoneCache) name(index uint32) string {
	if name, ok := (*z)[index]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(index), 10)
	if ifi, err := net.InterfaceByIndex(int(index)); err == nil {
		name = ifi.Name
	}
	if *z == nil || len(*z) > 64 {
		*z = make(zoneCache)
	}
	(*z)[index] = name
	return name
}

// scopeCache is the other way round: the interface index of a zone, as
// package net resolves it. Not safe for concurrent use.
type scopeCache map[string]uint32

func (c *scopeCache) index(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if i, ok := (*c)[zone]; ok {
		return i
	}
	var i uint32
	if ifi, err := net.InterfaceByName(zone); err == nil {
		i = uint32(ifi.Index)
	} else if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		i = uint32(n)
	}
	if *c == nil || len(*c) > 64 {
		*c = make(scopeCache)
	}
	(*c)[zone] = i
	return i
}
