package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// DialContext connects from the test process to address inside the
// namespace, with the signature of net.Dialer.DialContext so that it can
// serve as an http.Transport's DialContext. address must hold an IP literal
// (no name lookups happen in the namespace). The connection is usable from
// any goroutine; only its socket was made in the namespace.
func (n *NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		conn, err := n.dialInside(ctx, network, address)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// dialInside runs on a locked thread: it moves the thread into the
// namespace, dials, and moves it back. Only when the way back is sure does it
// unlock the thread; otherwise the runtime retires the thread with the
// goroutine rather than run other goroutines in the wrong namespace.
func (n *NS) dialInside(ctx context.Context, network, address string) (net.Conn, error) {
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", address, n.name, err)
	}
	defer home.Close()
	f, err := os.Open(filepath.Join("/run/netns", n.name))
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", address, n.name, err)
	}
	defer f.Close()
	if err := setns(f); err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", address, n.name, err)
	}
	// With one literal address the dialer makes its socket on this thread.
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, address)
	if setns(home) == nil {
		runtime.UnlockOSThread()
	}
	return conn, err
}

func setns(f *os.File) error {
	if _, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return fmt.Errorf("setns %s: %w", f.Name(), errno)
	}
	return nil
}
