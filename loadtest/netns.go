package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// netNS is a throw-away network namespace in which a STUN/TURN server and
// the load generator run, so that no packet touches the machine's interfaces
// and no port clashes with anything else on the machine. It holds lo and a
// veth pair whose one end has an address of 198.18.0.0/15 (RFC 2544's
// benchmarking range): relaying between two allocations needs a relayed
// address that is not loopback, which stunturn's peer filter refuses
// whatever its options say. The namespace has no route out.
type netNS struct {
	name  string
	relay netip.Addr // 198.18.x.(4k+1), on the veth inside the namespace
}

// netnsPrefix starts the name of every namespace this program makes; the PID
// of the process that made it follows.
const netnsPrefix = "loadtest-"

// newNetNS creates the namespace. It needs root and iproute2's ip.
func newNetNS() (*netNS, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the network namespace needs root (running as uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("iproute2's ip is needed: %w", err)
	}
	removeStaleNetNS()
	var r [3]byte
	rand.Read(r[:])
	r[2] &^= 3
	n := &netNS{
		name:  fmt.Sprintf("%s%d-%x", netnsPrefix, os.Getpid(), r),
		relay: netip.AddrFrom4([4]byte{198, 18 + r[0]&1, r[1], r[2] + 1}),
	}
	if err := ip("netns", "add", n.name); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "lt0", "type", "veth", "peer", "name", "lt1"},
		{"link", "set", "lt0", "addrgenmode", "none"},
		{"link", "set", "lt1", "addrgenmode", "none"},
		{"addr", "add", n.relay.String() + "/30", "dev", "lt0"},
		{"link", "set", "lt0", "up"},
		{"link", "set", "lt1", "up"},
	}
	for _, s := range steps {
		if err := ip(append([]string{"-n", n.name}, s...)...); err != nil {
			n.delete()
			return nil, err
		}
	}
	return n, nil
}

// command returns name run inside the namespace by ip netns exec, which execs
// name: the command's PID is name's own.
// As with exec.CommandContext, the end of ctx kills it by that PID.
func (n *netNS) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// delete kills, by PID, any process left in the namespace (only this
// program starts processes there, and it stops them before) and removes the
// namespace with its veth pair.
func (n *netNS) delete() error {
	out, err := exec.Command("ip", "netns", "pids", n.name).Output()
	if err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return ip("netns", "del", n.name)
}

// removeStaleNetNS deletes the namespaces that a loadtest made and could not
// remove because it was killed: those whose maker's PID is gone and in which
// no process runs.
func removeStaleNetNS() {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 1 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if out, err := exec.Command("ip", "netns", "pids", e.Name()).Output(); err == nil && len(strings.TrimSpace(string(out))) == 0 {
			ip("netns", "del", e.Name())
		}
	}
}

// checkInNetNS makes sure this process runs inside the namespace name, made
// by its parent process (a loadtest that started this one in it). The load
// generator then accepts relayed addresses that are not loopback: they exist
// only in that namespace.
func checkInNetNS(name string) error {
	if !strings.HasPrefix(name, fmt.Sprintf("%s%d-", netnsPrefix, os.Getppid())) {
		return fmt.Errorf("-netns %s: not a namespace of this program's parent (pid %d)", name, os.Getppid())
	}
	want, err := os.Stat("/run/netns/" + name)
	if err != nil {
		return fmt.Errorf("-netns: %w", err)
	}
	have, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return fmt.Errorf("-netns: %w", err)
	}
	if !os.SameFile(want, have) {
		return fmt.Errorf("-netns %s: this process is not inside it", name)
	}
	return nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
