package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/boxsignal/boxsignal/internal/netns"
)

// The lab's addresses. 198.18.0.0/15 (RFC 2544, benchmarking) plays the
// Internet and 10.77.0.0/16 the homes; both exist only inside the lab's
// namespaces, none of which has a route to the machine's interfaces.
const (
	boxIP = "198.18.0.1"
	// deadResolver is the homes' name server, on the lab's Internet: a
	// sink that answers nothing and reports the names asked (dns_linux_test.go).
	deadResolver = "198.18.0.53"
)

// natMode is how the home routers map a home's address to their outside
// address.
type natMode int

const (
	// natEndpointIndependent keeps one mapping (and, when it can, the port)
	// per inside socket whatever the destination: nft masquerade.
	natEndpointIndependent natMode = iota
	// natSymmetric gives each destination its own random outside port:
	// nft masquerade random,fully-random.
	natSymmetric
)

func (m natMode) String() string {
	if m == natSymmetric {
		return "symmetric"
	}
	return "endpoint-independent"
}

// ns is one network namespace of the lab, named uniquely for the run.
type ns struct{ name string }

// ip runs ip -n ns args.
func (n ns) ip(args ...string) error {
	return run(nil, "ip", append([]string{"-n", n.name}, args...)...)
}

// exec runs a program inside the namespace and waits for it.
func (n ns) exec(stdin []byte, name string, args ...string) error {
	return run(stdin, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// output runs a program inside the namespace and returns its stdout.
func (n ns) output(name string, args ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), n.name, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// command returns a command that runs name inside the namespace through ip
// netns exec, which execs name: the command's PID is name's, and the
// namespace's /etc/netns/<name>/resolv.conf replaces /etc/resolv.conf.
func (n ns) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// do runs f on a thread moved into the namespace, so that sockets f makes
// (a listener, a dialled connection) belong to it; they stay usable from
// any goroutine. The thread is handed back to the runtime only when it is
// sure to be back in its own namespace; otherwise it dies with the goroutine.
func (n ns) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		target, err := os.Open(filepath.Join("/run/netns", n.name))
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
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

// dial connects from the test process to address inside the namespace; its
// signature is net.Dialer.DialContext's, for an http.Transport.
func (n ns) dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// listen opens a TCP listener inside the namespace.
func (n ns) listen(address string) (net.Listener, error) {
	var ln net.Listener
	err := n.do(func() error {
		var err error
		ln, err = net.Listen("tcp", address)
		return err
	})
	return ln, err
}

// home is one home network: a namespace with the browser, behind its
// router's NAT.
type home struct {
	name   string // "A" or "B"
	ns     ns
	router ns
	addr   string // the home's address, behind the NAT
	gw     string // the router's inside address
	wan    string // the router's outside address, on the lab's Internet
}

// lab is the topology of one scenario:
//
//	home A ── router A ──┐
//	                      inet (bridge) ── box
//	home B ── router B ──┘
type lab struct {
	id   string
	inet ns
	box  ns
	a, b home
	all  []ns // in creation order; deleted in reverse
}

// newLab builds the lab's namespaces, links, addresses, routes and nft
// rules, and registers their removal with t.Cleanup (also when building
// fails half-way). It skips the test, or fails it under CI=true, when the
// tools or privileges it needs are missing.
func newLab(t *testing.T, mode natMode) *lab {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		netns.Unavailable(t, "e2e: network namespaces need root, running as uid %d", uid)
	}
	for _, tool := range []string{"ip", "nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			netns.Unavailable(t, "e2e: %s is needed (Debian: iproute2, nftables, procps): %v", tool, err)
		}
	}
	var r [3]byte
	rand.Read(r[:])
	// Unique across runs; the pid names the test process that made them
	// if a crash ever leaves some behind.
	l := &lab{id: "bse2e-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])}
	t.Cleanup(func() {
		for i := len(l.all) - 1; i >= 0; i-- {
			if err := destroy(l.all[i]); err != nil {
				t.Errorf("e2e: clean up: %v", err)
			}
		}
	})
	mk := func(role string) ns {
		n := ns{name: l.id + "-" + role}
		if err := run(nil, "ip", "netns", "add", n.name); err != nil {
			netns.Unavailable(t, "e2e: %v", err)
		}
		l.all = append(l.all, n)
		// No IPv6 at all: the only addresses are the lab's IPv4 ones.
		must(t, n.exec(nil, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"))
		must(t, n.ip("link", "set", "lo", "up"))
		return n
	}
	l.inet = mk("inet")
	l.box = mk("box")
	l.a = home{name: "A", router: mk("ra"), ns: mk("ha"), addr: "10.77.1.2", gw: "10.77.1.1", wan: "198.18.0.11"}
	l.b = home{name: "B", router: mk("rb"), ns: mk("hb"), addr: "10.77.2.2", gw: "10.77.2.1", wan: "198.18.0.12"}

	// The lab's Internet is a bridge in its own namespace; the box and the
	// routers each plug one veth into it.
	must(t, l.inet.ip("link", "add", "br0", "type", "bridge"))
	must(t, l.inet.ip("link", "set", "br0", "up"))
	plug := func(n ns, ifname, port, cidr string) {
		must(t, n.ip("link", "add", ifname, "type", "veth", "peer", "name", port, "netns", l.inet.name))
		must(t, l.inet.ip("link", "set", port, "master", "br0", "up"))
		must(t, n.ip("addr", "add", cidr, "dev", ifname))
		must(t, n.ip("link", "set", ifname, "up"))
	}
	plug(l.box, "eth0", "box", boxIP+"/24")
	must(t, l.inet.ip("addr", "add", deadResolver+"/24", "dev", "br0"))

	for _, h := range []home{l.a, l.b} {
		other := l.b
		if h.name == "B" {
			other = l.a
		}
		plug(h.router, "wan", "r"+strings.ToLower(h.name), h.wan+"/24")
		must(t, h.router.ip("link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", h.ns.name))
		must(t, h.router.ip("addr", "add", h.gw+"/24", "dev", "lan"))
		must(t, h.router.ip("link", "set", "lan", "up"))
		must(t, h.router.exec(nil, "sysctl", "-qw", "net.ipv4.ip_forward=1"))
		must(t, h.router.exec([]byte(routerRules(mode)), "nft", "-f", "-"))

		must(t, h.ns.ip("addr", "add", h.addr+"/24", "dev", "eth0"))
		must(t, h.ns.ip("link", "set", "eth0", "up"))
		must(t, h.ns.ip("route", "add", "default", "via", h.gw))
		must(t, h.ns.exec([]byte(egressRules(other.wan)), "nft", "-f", "-"))
		dir := filepath.Join("/etc/netns", h.ns.name)
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+deadResolver+"\noptions timeout:1 attempts:1\n"), 0o644))
	}
	return l
}

// routerRules is a home router's ruleset: masquerade out of wan, and drop
// what arrives on wan unsolicited, as home routers do. Without the drop, an
// ICE check from the far home that arrives before this home has sent
// anything leaves a conntrack entry behind (the router answers it with an
// ICMP error), and the later outbound mapping then takes another port:
// even the endpoint-independent NAT would fall back to relay.
func routerRules(mode natMode) string {
	masq := "masquerade"
	if mode == natSymmetric {
		masq = "masquerade random,fully-random"
	}
	return `
table ip e2e_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" ` + masq + `
	}
}
table inet e2e_filter {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "wan" ct state new drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "wan" ct state new drop
	}
}
`
}

// egressRules counts, in a home, every packet it sends to an address other
// than the Box and the other home's router, and remembers the addresses.
func egressRules(otherRouter string) string {
	return `
table inet e2e_egress {
	counter stray {}
	set stray4 { type ipv4_addr; flags dynamic; size 1024; }
	chain output {
		type filter hook output priority filter; policy accept;
		oifname "lo" accept
		ip daddr { ` + boxIP + `, ` + otherRouter + ` } accept
		meta nfproto ipv4 add @stray4 { ip daddr }
		counter name "stray"
	}
}
`
}

// strayPackets reads a home's egress counter: packets sent to any address
// but the Box and the other home's router, and those addresses.
func strayPackets(n ns) (packets int, addrs []string, err error) {
	packets, err = counter(n, "e2e_egress", "stray")
	if err != nil {
		return 0, nil, err
	}
	out, err := n.output("nft", "-j", "list", "set", "inet", "e2e_egress", "stray4")
	if err != nil {
		return 0, nil, err
	}
	var s struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return 0, nil, fmt.Errorf("nft set %s: %w", n.name, err)
	}
	for _, o := range s.Nftables {
		if o.Set == nil {
			continue
		}
		for _, e := range o.Set.Elem {
			var a string
			if json.Unmarshal(e, &a) != nil {
				a = string(e) // an element with more than its key
			}
			addrs = append(addrs, a)
		}
	}
	return packets, addrs, nil
}

// counter reads the packets of the named counter in table (family inet).
func counter(n ns, table, name string) (int, error) {
	out, err := n.output("nft", "-j", "list", "counter", "inet", table, name)
	if err != nil {
		return 0, err
	}
	var c struct {
		Nftables []struct {
			Counter *struct {
				Packets int `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &c); err != nil {
		return 0, fmt.Errorf("nft counter %s in %s: %w", name, n.name, err)
	}
	for _, o := range c.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets, nil
		}
	}
	return 0, fmt.Errorf("nft counter %s in %s: none in %s", name, n.name, out)
}

// destroy kills, by PID, every process still in the namespace (all of them
// were started by this test through it), deletes it and its /etc/netns
// directory.
func destroy(n ns) error {
	out, err := exec.Command("ip", "netns", "pids", n.name).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", n.name, err)
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		// The test process is listed when a thread that joined the
		// namespace in do could not leave it and was parked.
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return fmt.Errorf("kill %d in %s: %w", pid, n.name, err)
		}
	}
	if err := run(nil, "ip", "netns", "del", n.name); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join("/etc/netns", n.name))
}

// run runs a command with stdin and returns its output in the error.
func run(stdin []byte, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("e2e: build the lab: %v", err)
	}
}
