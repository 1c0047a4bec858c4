package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The STUN/TURN servers that loadtest starts listen on their namespace's
// loopback; relayed addresses are on its veth (netNS.relay). Both use the
// same REST shared secret.
const (
	benchSecret = "loadtest-secret-0123456789abcdef"
	listenAddr  = "127.0.0.1"
	listenPort  = 3478
	relayPorts  = "49152-65535"
	benchRealm  = "boxsignal"
)

// serverFlags pick the server of a stun or turn load: one running on
// loopback (-target, -pid), or a fresh one in a namespace (-server).
type serverFlags struct {
	target, secret, netns       string
	pid                         int
	server, signald, turnserver string
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.target, "target", "", "STUN/TURN server host:port to load (loopback only); default: a fresh -server in a network namespace of its own (needs root)")
	fs.IntVar(&f.pid, "pid", 0, "PID of -target, to read its CPU")
	fs.StringVar(&f.secret, "secret", benchSecret, "TURN REST shared secret of -target")
	fs.StringVar(&f.server, "server", "signald", "server started without -target: signald or coturn")
	fs.StringVar(&f.signald, "signald", "", "signald binary (default: built from this checkout)")
	fs.StringVar(&f.turnserver, "turnserver", "turnserver", "coturn's turnserver")
	fs.StringVar(&f.netns, "netns", "", "set by loadtest when it runs itself inside a namespace it made")
}

// targetOf is the running server of -target and -pid.
func (f *serverFlags) targetOf() (*target, error) {
	if f.netns != "" {
		if err := checkInNetNS(f.netns); err != nil {
			return nil, err
		}
	}
	if err := checkLoopback(f.target); err != nil {
		return nil, err
	}
	if f.pid == 0 {
		return nil, fmt.Errorf("-target needs -pid to read its CPU")
	}
	return &target{url: f.target, pid: f.pid, name: "target"}, nil
}

// runFresh makes a namespace, starts -server in it, calls fn, then stops the
// server and removes the namespace.
// runLoad runs the load named load against -target with direct, or, without
// -target, as a child generator (load with childArgs) against a fresh server
// in its own namespace, naming that server in the result with setServer.
func runLoad[R any](ctx context.Context, f *serverFlags, load string, childArgs []string,
	setServer func(*R, string), direct func(*target) (*R, error)) (*R, error) {
	if f.target == "" {
		var res R
		err := f.runFresh(ctx, func(ctx context.Context, s *nsServer) error {
			err := s.runChild(ctx, &res, load, childArgs...)
			setServer(&res, s.spec.name)
			return err
		})
		return &res, err
	}
	t, err := f.targetOf()
	if err != nil {
		return nil, err
	}
	return direct(t)
}

func (f *serverFlags) runFresh(ctx context.Context, fn func(context.Context, *nsServer) error) error {
	spec, err := lookupServer(ctx, f.server, f.signald, f.turnserver)
	if err != nil {
		return err
	}
	return withNetNS(func(ns *netNS) error {
		s, err := startNSServer(ns, spec)
		if err != nil {
			return err
		}
		defer s.stop()
		return fn(ctx, s)
	})
}

// withNetNS runs fn with a fresh namespace and removes it afterwards.
func withNetNS(fn func(*netNS) error) error {
	ns, err := newNetNS()
	if err != nil {
		return err
	}
	err = fn(ns)
	if derr := ns.delete(); derr != nil && err == nil {
		err = derr
	}
	return err
}

// serverSpec says how to start one STUN/TURN server in a namespace.
type serverSpec struct {
	name    string
	version string
	args    func(ns *netNS, dir string) (bin string, args []string)
}

// lookupServer finds or builds the server called name.
func lookupServer(ctx context.Context, name, signaldBin, turnserverBin string) (serverSpec, error) {
	switch name {
	case "signald":
		bin := signaldBin
		if bin == "" {
			var err error
			if bin, err = buildSignald(ctx); err != nil {
				return serverSpec{}, err
			}
		}
		return signaldSpec(bin), nil
	case "coturn":
		bin, err := exec.LookPath(turnserverBin)
		if err != nil {
			return serverSpec{}, fmt.Errorf("coturn's turnserver (apt-get install coturn): %w", err)
		}
		return coturnSpec(bin), nil
	}
	return serverSpec{}, fmt.Errorf("unknown server %q (want signald or coturn)", name)
}

// signaldSpec runs signald with production defaults except the limits that
// a load from one address trips (quotas, bandwidth, the unauthenticated
// rate), and with the relay address opened as a peer: each allocation's
// peer is the other allocation's relayed address, which is the Box's own,
// and the filter refuses that unless allowed. No other address is opened.
func signaldSpec(bin string) serverSpec {
	return serverSpec{name: "signald", version: gitDescribe(), args: func(ns *netNS, dir string) (string, []string) {
		return bin, []string{
			"-addr", "127.0.0.1:18000",
			"-turn-udp", fmt.Sprintf("%s:%d", listenAddr, listenPort),
			"-turn-tcp", fmt.Sprintf("%s:%d", listenAddr, listenPort),
			"-turn-secret", benchSecret,
			"-turn-realm", benchRealm,
			"-turn-relay-ip", ns.relay.String(),
			"-turn-relay-ports", relayPorts,
			"-turn-allow-peers", ns.relay.String() + "/32",
			"-turn-user-quota", "-1",
			"-turn-total-quota", "-1",
			"-turn-bandwidth", "-1",
			"-turn-unauth-rate", "-1",
			"-data-dir", dir,
			"-drain-timeout", "1s",
			"-log-level", "warn",
		}
	}}
}

// coturnSpec runs coturn with its defaults (verbosity, one relay thread per
// CPU) and the same listener, relay address, ports, realm and secret.
func coturnSpec(bin string) serverSpec {
	return serverSpec{name: "coturn", version: coturnVersion(bin), args: func(ns *netNS, dir string) (string, []string) {
		lo, hi, _ := strings.Cut(relayPorts, "-")
		return bin, []string{
			"--listening-ip", listenAddr,
			"--listening-port", strconv.Itoa(listenPort),
			"--relay-ip", ns.relay.String(),
			"--min-port", lo, "--max-port", hi,
			"--use-auth-secret", "--static-auth-secret", benchSecret,
			"--realm", benchRealm,
			"--no-tls", "--no-dtls", "--no-cli",
			"--log-file", "stdout", "--simple-log",
			"--pidfile", filepath.Join(dir, "turnserver.pid"),
			"--userdb", filepath.Join(dir, "turndb"),
		}
	}}
}

// nsServer is a server running in a namespace, with a directory of its own.
type nsServer struct {
	ns   *netNS
	spec serverSpec
	proc *target
	dir  string
}

func startNSServer(ns *netNS, spec serverSpec) (*nsServer, error) {
	dir, err := os.MkdirTemp("", "loadtest-"+spec.name+"-")
	if err != nil {
		return nil, err
	}
	bin, args := spec.args(ns, dir)
	p, err := startProc(spec.name, ns.command(context.Background(), bin, args...))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &nsServer{ns: ns, spec: spec, proc: p, dir: dir}, nil
}

// stop stops the server by its PID and removes its directory.
func (s *nsServer) stop() {
	s.proc.stop()
	os.RemoveAll(s.dir)
}

// runChild runs this program again inside the namespace, as the load
// generator of load ("stun" or "turn") against the server, and decodes the
// JSON it prints into out. The generator is a process of its own so that its
// CPU is its own, and it reads the server's CPU itself.
func (s *nsServer) runChild(ctx context.Context, out any, load string, args ...string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	full := append([]string{load, "-target", fmt.Sprintf("%s:%d", listenAddr, listenPort),
		"-pid", strconv.Itoa(s.proc.pid), "-netns", s.ns.name}, args...)
	cmd := s.ns.command(ctx, self, full...)
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Run(); err != nil {
		err = fmt.Errorf("%s load against %s: %w\n%s", load, s.spec.name, err, stderr.tail(2000))
		if e := s.proc.exited(); e != nil {
			err = fmt.Errorf("%w; %v", err, e)
		}
		return err
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s load against %s: %w: %.200s", load, s.spec.name, err, stdout.Bytes())
	}
	return s.proc.exited()
}

// gitDescribe names the checkout measured: its commit, "-dirty" when files
// outside docs/ (where the results go) differ from it.
func gitDescribe() string {
	b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(b))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)docs").Output(); err != nil || len(st) > 0 {
		commit += "-dirty"
	}
	return commit
}

func coturnVersion(bin string) string {
	b, _ := exec.Command(bin, "--version").CombinedOutput()
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "socket:") {
			return "coturn " + l
		}
	}
	return "coturn (version unknown)"
}

// childTimeout bounds a child generator: its own measured time plus setup.
func childTimeout(d time.Duration) time.Duration { return d + 45*time.Second }
