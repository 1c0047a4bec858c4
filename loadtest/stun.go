package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/pion/stun/v4"
)

// stunResult is what one STUN Binding load reports.
type stunResult struct {
	Load             string         `json:"load"`
	Target           string         `json:"target"`
	Server           string         `json:"server,omitempty"`
	Sockets          int            `json:"sockets"`
	Seconds          float64        `json:"seconds"`
	Requests         int64          `json:"requests"`
	Answered         int64          `json:"answered"`
	Timeouts         int64          `json:"timeouts"`
	Bad              int64          `json:"bad_answers"`
	BindingsPerS     float64        `json:"bindings_per_s"`
	TimeoutPct       float64        `json:"timeout_pct"`
	RTTms            map[string]any `json:"rtt_ms"`
	TargetCPUSeconds float64        `json:"target_cpu_s"`
	TargetSysShare   float64        `json:"target_cpu_system_share"` // of target_cpu_s, spent in the kernel
	TargetCPUPerBind float64        `json:"target_cpu_us_per_binding"`
	TargetCores      float64        `json:"target_cpu_cores"`
	GenCPUSeconds    float64        `json:"generator_cpu_s"`
	GenCPUShare      float64        `json:"generator_cpu_cores"`
}

type stunOpts struct {
	sockets  int
	duration time.Duration
}

// runSTUN parses the flags of the stun load and runs it, against -target or
// against a fresh server in a network namespace of its own.
func runSTUN(ctx context.Context, args []string) (*stunResult, error) {
	fs := flag.NewFlagSet("stun", flag.ContinueOnError)
	var o stunOpts
	fs.IntVar(&o.sockets, "sockets", 32, "UDP sockets, each with one Binding request in flight (a closed loop)")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time")
	timeout := fs.Duration("timeout", time.Minute, "bound on the whole run")
	var srv serverFlags
	srv.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.sockets < 1 || o.sockets > 1024 || o.duration <= 0 || o.duration > time.Minute {
		return nil, errors.New("want 1 ≤ -sockets ≤ 1024 and 0 < -duration ≤ 1m")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return runLoad(ctx, &srv, "stun", o.args(), func(r *stunResult, name string) { r.Server = name },
		func(t *target) (*stunResult, error) { return stunLoad(ctx, t, o) })
}

// args are the flags that give o to a child generator.
func (o stunOpts) args() []string {
	return []string{"-sockets", fmt.Sprint(o.sockets), "-duration", o.duration.String(),
		"-timeout", childTimeout(o.duration).String()}
}

// stunLoad runs o.sockets goroutines, each with its own UDP socket (so a
// server's SO_REUSEPORT sockets share the load), that send a Binding
// request, wait for its answer (at most 1 s) and repeat until o.duration
// ends. Before that every socket must get one answer, which also waits for
// a server that is starting.
func stunLoad(ctx context.Context, t *target, o stunOpts) (*stunResult, error) {
	raddr, err := net.ResolveUDPAddr("udp", t.url)
	if err != nil {
		return nil, err
	}
	cs := make([]*net.UDPConn, o.sockets)
	for i := range cs {
		if cs[i], err = net.DialUDP("udp", nil, raddr); err != nil {
			return nil, err
		}
		defer cs[i].Close()
	}
	for _, c := range cs {
		if err := awaitBinding(ctx, c, 10*time.Second); err != nil {
			return nil, err
		}
	}

	type tally struct {
		requests, answered, timeouts, bad int64
		rtts                              []time.Duration
	}
	tallies := make([]tally, len(cs))
	cpu0, err := t.cpuStart()
	if err != nil {
		return nil, err
	}
	gen0 := selfCPU()
	start := time.Now()
	end := start.Add(o.duration)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			tl := &tallies[i]
			for ctx.Err() == nil && time.Now().Before(end) {
				tl.requests++
				t0 := time.Now()
				ok, wrong, err := transact(c, time.Second)
				switch {
				case err != nil:
					tl.bad++
				case ok:
					tl.answered++
					if len(tl.rtts) < maxRTTSamples/len(cs) {
						tl.rtts = append(tl.rtts, time.Since(t0))
					}
				default:
					tl.timeouts++
				}
				tl.bad += wrong
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, sysShare := t.cpuSince(cpu0)
	gen1 := selfCPU()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	res := &stunResult{Load: "stun", Target: t.url, Sockets: o.sockets, Seconds: elapsed.Seconds()}
	var rtts []time.Duration
	for _, tl := range tallies {
		res.Requests += tl.requests
		res.Answered += tl.answered
		res.Timeouts += tl.timeouts
		res.Bad += tl.bad
		rtts = append(rtts, tl.rtts...)
	}
	res.RTTms = percentiles(rtts)
	res.BindingsPerS = float64(res.Answered) / elapsed.Seconds()
	if res.Requests > 0 {
		res.TimeoutPct = 100 * float64(res.Timeouts) / float64(res.Requests)
	}
	res.TargetCPUSeconds, res.TargetSysShare = cpu.Seconds(), sysShare
	res.TargetCores = res.TargetCPUSeconds / elapsed.Seconds()
	if res.Answered > 0 {
		res.TargetCPUPerBind = float64(cpu.Microseconds()) / float64(res.Answered)
	}
	res.GenCPUSeconds = (gen1 - gen0).Seconds()
	res.GenCPUShare = res.GenCPUSeconds / elapsed.Seconds()
	return res, nil
}

// awaitBinding sends Binding requests on c until one is answered, or fails
// after limit: a server that is starting refuses (ICMP port unreachable) or
// drops them.
func awaitBinding(ctx context.Context, c *net.UDPConn, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		ok, _, err := transact(c, 200*time.Millisecond)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED): // not listening yet
			time.Sleep(50 * time.Millisecond)
		case err != nil:
			return err
		case ok:
			return nil
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("waiting for a STUN Binding answer from %v: %w", c.RemoteAddr(), ctx.Err())
	}
	return fmt.Errorf("no STUN Binding answer from %v within %v", c.RemoteAddr(), limit)
}

// transact sends one Binding request on c and waits up to timeout for the
// success response with its transaction ID, which must carry an
// XOR-MAPPED-ADDRESS. Stale answers to earlier, timed-out requests are
// skipped and counted in wrong.
func transact(c *net.UDPConn, timeout time.Duration) (ok bool, wrong int64, err error) {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest)
	if err != nil {
		return false, 0, err
	}
	if _, err := c.Write(req.Raw); err != nil {
		return false, 0, err
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return false, 0, err
	}
	var buf [1500]byte
	for {
		n, err := c.Read(buf[:])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return false, wrong, nil
			}
			return false, wrong, err
		}
		resp := &stun.Message{Raw: buf[:n]}
		if err := resp.Decode(); err != nil || resp.TransactionID != req.TransactionID {
			wrong++
			continue
		}
		var xor stun.XORMappedAddress
		if resp.Type != stun.BindingSuccess || xor.GetFrom(resp) != nil {
			wrong++
			continue
		}
		return true, wrong, nil
	}
}
