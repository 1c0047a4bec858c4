// Command turnbench measures the Box's STUN/TURN server (stunturn, served by
// cmd/signald) against coturn in the same run, with the same load
// generators:
//
//	sudo go run ./loadtest/turnbench             # 3 rounds, about 2 minutes
//	sudo go run ./loadtest/turnbench -rounds 1 -messages 300
//
// Each round starts each server fresh (order alternating between rounds) in
// a network namespace this program creates, runs the STUN Binding load (a Go
// closed-loop generator, this program in "stunclient" mode) and then the
// relay load (coturn's turnutils_uclient, client-to-client over UDP), and
// stops the server by PID. Server CPU is utime+stime from /proc/PID/stat
// over the measured window; the load generators' CPU is reported beside it
// because they share the machine's cores with the server.
//
// It prints a table on stderr and one JSON object on stdout. It needs root
// (for the namespace), iproute2 and the Debian package coturn. Every step is
// bounded in count and time; the whole run is bounded by -timeout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// secret is the TURN REST shared secret of both servers; turnutils_uclient -W
// takes it as text.
const secret = "turnbench-secret-0123456789abcdef"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "stunclient" {
		if err := stunClientMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "turnbench: %v\n", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

// Run is one server's measurements in one round.
type Run struct {
	Server string
	Round  int
	STUN   STUNResult
	Relay  RelayResult
}

// Report is the program's output.
type Report struct {
	Machine  Machine
	Command  string
	Versions map[string]string
	Runs     []Run
	Summary  []Row
}

// Machine describes where it ran.
type Machine struct {
	CPUs   int
	Model  string
	Kernel string
	Go     string
}

type options struct {
	rounds      int
	relay       relayLoad
	stunConns   int
	stunTime    time.Duration
	signald     string
	turnserver  string
	uclient     string
	servers     string
	timeout     time.Duration
	stepTimeout time.Duration
}

func run(ctx context.Context, args []string, log io.Writer) (*Report, error) {
	var o options
	fs := flag.NewFlagSet("turnbench", flag.ContinueOnError)
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every server once (order alternates)")
	fs.IntVar(&o.relay.Clients, "clients", 100, "turnutils_uclient -m: clients (allocations), paired by -y; even")
	fs.IntVar(&o.relay.Messages, "messages", 1500, "turnutils_uclient -n: messages per client")
	fs.IntVar(&o.relay.Size, "size", 100, "turnutils_uclient -l: message bytes")
	fs.IntVar(&o.relay.IntervalMS, "interval", 1, "turnutils_uclient -z: ms between a client's messages")
	fs.IntVar(&o.stunConns, "stun-conns", 32, "STUN load: sockets, one Binding request in flight on each")
	fs.DurationVar(&o.stunTime, "stun-duration", 5*time.Second, "STUN load: measured window")
	fs.StringVar(&o.signald, "signald", "", "signald binary (default: go build ./cmd/signald into a temporary directory)")
	fs.StringVar(&o.turnserver, "turnserver", "turnserver", "coturn's turnserver")
	fs.StringVar(&o.uclient, "uclient", "turnutils_uclient", "coturn's turnutils_uclient")
	fs.StringVar(&o.servers, "servers", "signald,coturn", "servers to measure, comma-separated")
	fs.DurationVar(&o.timeout, "timeout", 175*time.Second, "bound on the whole run")
	fs.DurationVar(&o.stepTimeout, "relay-timeout", 60*time.Second, "bound on one turnutils_uclient run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.rounds < 1 || o.rounds > 9 || o.relay.Clients < 2 || o.relay.Clients%2 != 0 || o.relay.Clients > 500 ||
		o.relay.Messages < 1 || o.relay.Messages > 100000 || o.relay.Size < 20 || o.relay.Size > 1200 ||
		o.relay.IntervalMS < 1 || o.stunConns < 1 || o.stunConns > 1024 || o.stunTime <= 0 || o.stunTime > time.Minute {
		return nil, fmt.Errorf("flags out of range: rounds 1-9, clients even 2-500, messages 1-100000, size 20-1200, interval >= 1, stun-conns 1-1024, stun-duration <= 1m")
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "turnbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var specs []serverSpec
	versions := map[string]string{}
	for _, name := range strings.Split(o.servers, ",") {
		switch strings.TrimSpace(name) {
		case "signald":
			bin := o.signald
			if bin == "" {
				bin = filepath.Join(tmp, "signald")
				fmt.Fprintln(log, "turnbench: go build ./cmd/signald")
				if err := buildSignald(ctx, bin); err != nil {
					return nil, err
				}
			}
			versions["signald"] = gitDescribe()
			specs = append(specs, signaldSpec(bin))
		case "coturn":
			bin, err := exec.LookPath(o.turnserver)
			if err != nil {
				return nil, fmt.Errorf("coturn's turnserver (apt-get install coturn): %w", err)
			}
			versions["coturn"] = coturnVersion(bin)
			specs = append(specs, coturnSpec(bin))
		default:
			return nil, fmt.Errorf("-servers: unknown server %q", name)
		}
	}
	uclient, err := exec.LookPath(o.uclient)
	if err != nil {
		return nil, fmt.Errorf("coturn's turnutils_uclient (apt-get install coturn): %w", err)
	}

	ns, err := newBenchNS()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := ns.delete(); err != nil {
			fmt.Fprintf(log, "turnbench: %v\n", err)
		}
	}()

	rep := &Report{Machine: machine(), Command: strings.TrimSpace("go run ./loadtest/turnbench " + strings.Join(args, " ")), Versions: versions}
	for round := 1; round <= o.rounds; round++ {
		order := slices.Clone(specs)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, spec := range order {
			fmt.Fprintf(log, "turnbench: round %d/%d: %s\n", round, o.rounds, spec.name)
			r, err := runServer(ctx, ns, spec, uclient, o, filepath.Join(tmp, fmt.Sprintf("%s-%d", spec.name, round)), round)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round, spec.name, err)
			}
			rep.Runs = append(rep.Runs, r)
		}
	}
	rep.Summary = summarize(rep.Runs, specs)
	printTable(log, rep, o)
	return rep, nil
}

// runServer starts one server, measures STUN and then relay, and stops it.
func runServer(ctx context.Context, ns *benchNS, spec serverSpec, uclient string, o options, dir string, round int) (Run, error) {
	r := Run{Server: spec.name, Round: round}
	p, err := startServer(ns, spec, dir)
	if err != nil {
		return r, err
	}
	defer p.stop(3 * time.Second)
	// The STUN generator waits (bounded) for the first answers, so it also
	// waits for the server to listen.
	if r.STUN, err = runSTUN(ctx, ns, p.pid(), o.stunConns, o.stunTime); err != nil {
		return r, withOutput(err, p)
	}
	user := fmt.Sprintf("bench%d", round)
	if r.Relay, err = runRelay(ctx, ns, uclient, p.pid(), o.relay, user, o.stepTimeout); err != nil {
		return r, withOutput(err, p)
	}
	if err := p.exited(); err != nil {
		return r, err
	}
	return r, nil
}

// withOutput adds the server's output when it has died.
func withOutput(err error, p *proc) error {
	if e := p.exited(); e != nil {
		return fmt.Errorf("%w; %v", err, e)
	}
	return err
}

func buildSignald(ctx context.Context, out string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/signald")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/signald: %w\n%s", err, b)
	}
	return nil
}

func gitDescribe() string {
	b, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func coturnVersion(bin string) string {
	b, _ := exec.Command(bin, "--version").CombinedOutput()
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "socket:") {
			return l
		}
	}
	return "unknown"
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		b := make([]byte, 0, len(u.Release))
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		m.Kernel = string(b)
	}
	return m
}
