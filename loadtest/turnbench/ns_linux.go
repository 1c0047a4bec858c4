package main

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// benchNS is a throw-away network namespace in which both servers, the relay
// load generator and the STUN load generator run, so that no packet touches
// the machine's interfaces. It holds lo and a veth pair whose one end has a
// public-range address: relaying between two allocations needs a relayed
// address that is neither loopback (a hard deny in stunturn's peer filter,
// which signald cannot lift) nor, without -turn-allow-peers, the Box's own.
type benchNS struct {
	name  string
	relay netip.Addr // 11.x.y.(4k+1), on the veth inside the namespace
}

// newBenchNS creates the namespace. 11.0.0.0/8 is allocated (not
// special-purpose) and not announced publicly; the random /30 of it exists
// only on a veth inside the namespace, which has no route out.
func newBenchNS() (*benchNS, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the network namespace needs root (running as uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("iproute2's ip is needed: %w", err)
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	r[2] &^= 3
	n := &benchNS{
		name:  fmt.Sprintf("turnbench-%d-%x", os.Getpid(), r),
		relay: netip.AddrFrom4([4]byte{11, r[0], r[1], r[2] + 1}),
	}
	if err := ip("netns", "add", n.name); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "tb0", "type", "veth", "peer", "name", "tb1"},
		{"link", "set", "tb0", "addrgenmode", "none"},
		{"link", "set", "tb1", "addrgenmode", "none"},
		{"addr", "add", n.relay.String() + "/30", "dev", "tb0"},
		{"link", "set", "tb0", "up"},
		{"link", "set", "tb1", "up"},
	}
	for _, s := range steps {
		if err := ip(append([]string{"-n", n.name}, s...)...); err != nil {
			_ = n.delete()
			return nil, err
		}
	}
	return n, nil
}

// command returns cmd run inside the namespace by ip netns exec, which execs
// name: the command's PID is name's own.
func (n *benchNS) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// delete removes the namespace (and the veth pair in it). Every process
// started in it has been stopped by PID before.
func (n *benchNS) delete() error {
	return ip("netns", "del", n.name)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
