package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Prefix is the address, with its subnet, that every namespace gives its
// veth interface. 198.18.0.0/15 is reserved for benchmarking (RFC 2544), so it
// names nothing real; the subnet exists only inside each namespace, which has
// no route anywhere else, so namespaces do not see each other.
var Prefix = netip.MustParsePrefix("198.18.0.1/24")

// Interface names inside the namespace; they cannot clash with the host's.
const (
	ifName     = "bs0"
	ifPeerName = "bs1"
)

// NS is a network namespace owned by one test. Its methods are safe for
// concurrent use.
type NS struct {
	name string
}

// New creates a uniquely named network namespace with lo up and a veth pair
// whose end ifName holds [Prefix]. (A dummy interface would do, but not every
// kernel has the dummy driver; veth is everywhere namespaces are.) IPv6
// link-local addresses are turned off on the pair so the only non-loopback
// address is Prefix's.
//
// The namespace is deleted by t.Cleanup, after killing every process still in
// it. New skips t (fails it under CI=true, see [Unavailable]) when not root,
// when ip is missing, or when the kernel refuses the namespace or the veth
// pair.
func New(t testing.TB) *NS {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		Unavailable(t, "netns: network namespaces need root, running as uid %d", uid)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		Unavailable(t, "netns: iproute2's ip is needed: %v", err)
	}

	var b [4]byte
	rand.Read(b[:])
	// Unique across parallel tests and runs; the pid tells which test process
	// left a namespace behind if one ever survives a crash.
	n := &NS{name: "bsig-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])}
	if err := ip("netns", "add", n.name); err != nil {
		Unavailable(t, "netns: %v", err)
	}
	t.Cleanup(func() {
		if err := n.destroy(); err != nil {
			t.Errorf("netns: clean up %s: %v", n.name, err)
		}
	})

	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", ifName, "type", "veth", "peer", "name", ifPeerName},
		{"link", "set", ifName, "addrgenmode", "none"},
		{"link", "set", ifPeerName, "addrgenmode", "none"},
		{"addr", "add", Prefix.String(), "dev", ifName},
		{"link", "set", ifName, "up"},
		{"link", "set", ifPeerName, "up"},
	}
	for _, s := range steps {
		if err := ip(append([]string{"-n", n.name}, s...)...); err != nil {
			Unavailable(t, "netns: set up %s: %v", n.name, err)
		}
	}
	return n
}

// Name is the namespace's name, as ip netns list shows it.
func (n *NS) Name() string { return n.name }

// Addr is the namespace's non-loopback address, [Prefix]'s address.
func (n *NS) Addr() netip.Addr { return Prefix.Addr() }

// destroy kills, by PID, every process still in the namespace (all of them
// were started by the test through it), then deletes the namespace.
func (n *NS) destroy() error {
	out, err := exec.Command("ip", "netns", "pids", n.name).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", n.name, err)
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		// The test process itself is listed when a thread that joined the
		// namespace in DialContext could not leave it and the runtime had
		// to park it (as it does with the main thread).
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		// ESRCH only means it exited since the listing.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("kill %d in %s: %w", pid, n.name, err)
		}
	}
	return ip("netns", "del", n.name)
}

// ip runs ip with args and returns its output in the error.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
