package stunturn

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/netns"
	"github.com/pion/stun/v4"
	"golang.org/x/sys/unix"
)

// peerNS is a network namespace joined to the host by a veth pair, so that
// relay sockets on the host can reach a peer inside it. Unlike
// internal/netns (whose namespaces are closed worlds on 198.18.0.0/24), it
// needs addresses the peer filter lets through by default: a public-range
// /30, routed only over this veth while the test runs, and a /30 of the
// benchmarking range 198.19.0.0/16 for the AllowPeers case.
type peerNS struct {
	name                string
	hostPub, peerPub    netip.Addr // host and namespace ends, public range
	hostBench, peerBnch netip.Addr // host and namespace ends, 198.19.x.0/30
}

func newPeerNS(t *testing.T) *peerNS {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		netns.Unavailable(t, "stunturn: the peer namespace needs root, running as uid %d", uid)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		netns.Unavailable(t, "stunturn: iproute2's ip is needed: %v", err)
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	r[2] &^= 3
	n := &peerNS{
		name: fmt.Sprintf("stt-%d-%x", os.Getpid(), r),
		// 11.0.0.0/8 is allocated (not special-purpose) and not announced
		// publicly; a random /30 of it exists only on this veth.
		hostPub:   netip.AddrFrom4([4]byte{11, r[0], r[1], r[2] + 1}),
		peerPub:   netip.AddrFrom4([4]byte{11, r[0], r[1], r[2] + 2}),
		hostBench: netip.AddrFrom4([4]byte{198, 19, r[0], r[2] + 1}),
		peerBnch:  netip.AddrFrom4([4]byte{198, 19, r[0], r[2] + 2}),
	}
	hostIf, peerIf := fmt.Sprintf("stt%xa", r), fmt.Sprintf("stt%xb", r)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", n.name)
	t.Cleanup(func() {
		// Deleting the namespace deletes the veth pair with it.
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
		_ = exec.Command("ip", "link", "del", hostIf).Run()
	})
	run("link", "add", hostIf, "type", "veth", "peer", "name", peerIf)
	run("link", "set", peerIf, "netns", n.name)
	run("addr", "add", n.hostPub.String()+"/30", "dev", hostIf)
	run("addr", "add", n.hostBench.String()+"/30", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("-n", n.name, "addr", "add", n.peerPub.String()+"/30", "dev", peerIf)
	run("-n", n.name, "addr", "add", n.peerBnch.String()+"/30", "dev", peerIf)
	run("-n", n.name, "link", "set", peerIf, "up")
	run("-n", n.name, "link", "set", "lo", "up")
	return n
}

// inside runs f on a thread that has joined the namespace; sockets f makes
// stay in the namespace. The thread is retired if it cannot get back.
func (n *peerNS) inside(t *testing.T, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		ns, err := os.Open(filepath.Join("/run/netns", n.name))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		f()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestPeerInNamespace relays to peers inside a namespace reached over a veth:
// a public-range address is accepted by the default filter (UDP relay and
// RFC 6062 Connect), the host's own end of the veth is refused as "self",
// and a benchmarking-range address is refused until AllowPeers opens it.
func TestPeerInNamespace(t *testing.T) {
	ns := newPeerNS(t)
	// One UDP echo per address: a socket on 0.0.0.0 would answer from
	// whichever address routing picks, which has no permission.
	var udpPeer, udpBench, tcpPeer netip.AddrPort
	ns.inside(t, func() {
		pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(ns.peerPub, 0).String())
		if err != nil {
			t.Error(err)
			return
		}
		udpPeer = serveUDPEcho(t, pc)
		if pc, err = net.ListenPacket("udp4", netip.AddrPortFrom(ns.peerBnch, 0).String()); err != nil {
			t.Error(err)
			return
		}
		udpBench = serveUDPEcho(t, pc)
		tcpPeer = tcpEcho(t, "tcp4", "0.0.0.0:0")
	})
	if !udpPeer.IsValid() || !udpBench.IsValid() || !tcpPeer.IsValid() {
		t.FailNow()
	}
	at := func(a netip.Addr, p netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a, p.Port()) }

	// Relay sockets bind to the host end of the veth, which is advertised.
	base := Config{RelayAddress: ns.hostPub.AsSlice()}
	t.Run("default filter", func(t *testing.T) {
		s := newTestServer(t, base)
		user, pass := restCreds("ns")
		c := dialTURN(t, "udp", s.udp(), user, pass)
		if relay := c.mustAllocate(protoUDP, famV4); relay.Addr() != ns.hostPub {
			t.Fatalf("relayed address %v, want %v", relay, ns.hostPub)
		}
		if code := c.createPermission(at(ns.peerPub, udpPeer)); code != 0 {
			t.Fatalf("CreatePermission(%v) = %d, want success", ns.peerPub, code)
		}
		if code := c.channelBind(0x4000, at(ns.peerPub, udpPeer)); code != 0 {
			t.Fatalf("ChannelBind(%v) = %d, want success", ns.peerPub, code)
		}
		echoThrough(t, c, 0x4000)
		for _, denied := range []netip.Addr{ns.hostPub, ns.hostBench, ns.peerBnch} {
			if code := c.createPermission(at(denied, udpPeer)); code != 403 {
				t.Errorf("CreatePermission(%v) = %d, want 403", denied, code)
			}
		}
		if got := counterValue(t, s.m.deniedPeers.WithLabelValues(string(reasonSelf))); got != 2 {
			t.Errorf(`denied_peers_total{reason="self"} = %v, want 2`, got)
		}

		ctl := dialTURN(t, "tcp", s.tcp(), user, pass)
		ctl.mustAllocate(protoTCP, famV4)
		code, id := ctl.connect(at(ns.peerPub, tcpPeer))
		if code != 0 {
			t.Fatalf("Connect(%v) = %d, want success", ns.peerPub, code)
		}
		data := dialTURN(t, "tcp", s.tcp(), user, pass)
		if code := errCode(data.authed(stun.MethodConnectionBind, attr{stun.AttrConnectionID, id})); code != 0 {
			t.Fatalf("ConnectionBind = %d", code)
		}
		msg := []byte("through the namespace")
		data.write(msg)
		got := make([]byte, len(msg))
		_ = data.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(data.conn, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("TCP echo = %q, %v", got, err)
		}
		if code, _ := ctl.connect(at(ns.hostPub, tcpPeer)); code != 403 {
			t.Errorf("Connect(%v) = %d, want 403", ns.hostPub, code)
		}
	})
	t.Run("AllowPeers", func(t *testing.T) {
		cfg := base
		cfg.AllowPeers = []netip.Prefix{netip.PrefixFrom(ns.peerBnch, 30).Masked()}
		s := newTestServer(t, cfg)
		user, pass := restCreds("ns-lan")
		c := dialTURN(t, "udp", s.udp(), user, pass)
		c.mustAllocate(protoUDP, famV4)
		if code := c.channelBind(0x4000, udpBench); code != 0 {
			t.Fatalf("ChannelBind(%v) with AllowPeers = %d, want success", ns.peerBnch, code)
		}
		echoThrough(t, c, 0x4000)
		if code := c.createPermission(at(ns.hostPub, udpPeer)); code != 403 {
			t.Errorf("CreatePermission(%v) = %d, want 403", ns.hostPub, code)
		}
	})
}
