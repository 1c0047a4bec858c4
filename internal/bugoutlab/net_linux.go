package bugoutlab

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"golang.org/x/sys/unix"
)

// Net is the namespace as pion's network: its interfaces (lo and the veth
// holding 198.18.0.1) and sockets made inside it, for an in-process Go peer
// (bugout/transport Config.Net). Every socket lives in the namespace, so
// no ICE packet of the peer touches the host's interfaces.
func (l *Lab) Net(t testing.TB) transport.Net {
	t.Helper()
	var std *stdnet.Net
	if err := l.inside(func() error {
		var err error
		std, err = stdnet.NewNet() // lists the namespace's interfaces
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return &nsNet{Net: std, l: l}
}

type nsNet struct {
	*stdnet.Net
	l *Lab
}

func (n *nsNet) ListenPacket(network, address string) (c net.PacketConn, err error) {
	err = n.l.inside(func() error { c, err = n.Net.ListenPacket(network, address); return err })
	return c, err
}

func (n *nsNet) ListenUDP(network string, laddr *net.UDPAddr) (c transport.UDPConn, err error) {
	err = n.l.inside(func() error { c, err = n.Net.ListenUDP(network, laddr); return err })
	return c, err
}

func (n *nsNet) ListenTCP(network string, laddr *net.TCPAddr) (c transport.TCPListener, err error) {
	err = n.l.inside(func() error { c, err = n.Net.ListenTCP(network, laddr); return err })
	return c, err
}

func (n *nsNet) Dial(network, address string) (c net.Conn, err error) {
	err = n.l.inside(func() error { c, err = n.Net.Dial(network, address); return err })
	return c, err
}

func (n *nsNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (c transport.UDPConn, err error) {
	err = n.l.inside(func() error { c, err = n.Net.DialUDP(network, laddr, raddr); return err })
	return c, err
}

func (n *nsNet) DialTCP(network string, laddr, raddr *net.TCPAddr) (c transport.TCPConn, err error) {
	err = n.l.inside(func() error { c, err = n.Net.DialTCP(network, laddr, raddr); return err })
	return c, err
}

// inside runs f on a locked OS thread that has entered the namespace. Only
// a thread that surely came back is unlocked; otherwise the runtime retires
// it with the goroutine.
func (l *Lab) inside(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		ns, err := os.Open(filepath.Join("/run/netns", l.NS.Name()))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", l.NS.Name(), err)
			return
		}
		err = f()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
