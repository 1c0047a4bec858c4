package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
)

// turnResult is what one TURN relay load reports. A relayed packet is one
// datagram delivered from an allocation's client to its partner's: the
// server receives it from the client (as ChannelData), sends it from one
// relayed address to the other, receives it there and sends it on to the
// partner's client: two datagrams in and two out.
type turnResult struct {
	Load             string         `json:"load"`
	Target           string         `json:"target"`
	Server           string         `json:"server,omitempty"`
	Allocations      int            `json:"allocations"`
	PacketBytes      int            `json:"packet_bytes"`
	OfferedPerS      float64        `json:"offered_packets_per_s"`
	Seconds          float64        `json:"seconds"`
	Sent             int64          `json:"sent"`
	Behind           int64          `json:"behind_schedule"` // not sent: the generator fell behind the offered rate
	Received         int64          `json:"received"`
	PacketsPerS      float64        `json:"packets_per_s"`
	LossPct          float64        `json:"loss_pct"`
	LatencyMs        map[string]any `json:"latency_ms"` // one way, client to partner through both relays
	Failures         map[string]int `json:"failures"`
	TargetCPUSeconds float64        `json:"target_cpu_s"`
	TargetSysShare   float64        `json:"target_cpu_system_share"` // of target_cpu_s, spent in the kernel
	TargetCPUPerPkt  float64        `json:"target_cpu_us_per_packet"`
	TargetCores      float64        `json:"target_cpu_cores"`
	GenCPUSeconds    float64        `json:"generator_cpu_s"`
	GenCPUShare      float64        `json:"generator_cpu_cores"`
}

type turnOpts struct {
	allocations int
	size        int
	rate        float64 // packets/s offered by all allocations together
	duration    time.Duration
}

// args are the flags that give o to a child generator.
func (o turnOpts) args() []string {
	return []string{"-allocations", fmt.Sprint(o.allocations), "-size", fmt.Sprint(o.size),
		"-rate", fmt.Sprint(o.rate), "-duration", o.duration.String(), "-timeout", childTimeout(o.duration).String()}
}

func (o turnOpts) check() error {
	if o.allocations < 2 || o.allocations%2 != 0 || o.allocations > 1000 || o.size < turnHeader || o.size > 1200 ||
		o.rate <= 0 || o.rate > 200000 || o.duration <= 0 || o.duration > time.Minute {
		return fmt.Errorf("want -allocations even in 2..1000, -size %d..1200, 0 < -rate ≤ 200000, 0 < -duration ≤ 1m", turnHeader)
	}
	return nil
}

// runTURN parses the flags of the turn load and runs it, against -target or
// against a fresh server in a network namespace of its own.
func runTURN(ctx context.Context, args []string) (*turnResult, error) {
	fs := flag.NewFlagSet("turn", flag.ContinueOnError)
	var o turnOpts
	fs.IntVar(&o.allocations, "allocations", 100, "TURN allocations over UDP, each with its own client socket; paired, each sends to its partner's relayed address")
	fs.IntVar(&o.size, "size", 100, "bytes of each relayed packet")
	fs.Float64Var(&o.rate, "rate", 20000, "packets/s offered by all allocations together")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "measured time")
	timeout := fs.Duration("timeout", time.Minute, "bound on the whole run")
	var srv serverFlags
	srv.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return runLoad(ctx, &srv, "turn", o.args(), func(r *turnResult, name string) { r.Server = name },
		func(t *target) (*turnResult, error) { return turnLoad(ctx, t, o, srv.secret, srv.netns != "") })
}

// A relayed packet starts with the time it was sent (nanoseconds since the
// run's start) and its phase.
const (
	turnHeader  = 9
	phaseWarmup = 1
	phaseLoad   = 2
)

// allocation is one TURN client with its relayed address and its partner's.
type allocation struct {
	conn   net.PacketConn
	client *turn.Client
	relay  net.PacketConn
	peer   net.Addr

	warm     atomic.Bool
	received atomic.Int64
	sent     int64           // written by the sender only
	behind   int64           // written by the sender only
	latency  []time.Duration // written by the reader only, read after it ends
}

// turnLoad allocates o.allocations relays on t with REST credentials of
// secret, pairs them, and has every allocation send o.size-byte packets to
// its partner's relayed address at o.rate/o.allocations packets/s for
// o.duration. Relayed addresses must be loopback unless inNetNS says this
// process runs in a namespace of its parent's (where they exist only there).
func turnLoad(ctx context.Context, t *target, o turnOpts, secret string, inNetNS bool) (*turnResult, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", t.url)
	if err != nil {
		return nil, err
	}
	probe, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, err
	}
	err = awaitBinding(ctx, probe, 10*time.Second)
	probe.Close()
	if err != nil {
		return nil, err
	}

	fails := &failures{m: map[string]int{}}
	allocs := make([]*allocation, o.allocations)
	var readers sync.WaitGroup
	defer readers.Wait() // after the allocations are closed, below
	defer func() {
		for _, a := range allocs {
			if a != nil {
				a.close()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, len(allocs))
	sem := make(chan struct{}, 16)
	for i := range allocs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			allocs[i], errs[i] = allocate(ctx, raddr, secret, fmt.Sprintf("load%d", i), fails)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("allocate: %w", err)
	}
	for _, a := range allocs {
		relayed := a.relay.LocalAddr().(*net.UDPAddr)
		if !relayed.IP.IsLoopback() && !inNetNS {
			return nil, fmt.Errorf("relayed address %v is not loopback: traffic goes to 127.0.0.0/8 or ::1, or stays in a namespace of loadtest's own", relayed)
		}
	}
	for i := 0; i < len(allocs); i += 2 {
		a, b := allocs[i], allocs[i+1]
		a.peer, b.peer = b.relay.LocalAddr(), a.relay.LocalAddr()
	}

	base := time.Now()
	for _, a := range allocs {
		readers.Go(func() { a.read(base, o.allocations, fails) })
	}
	if err := warmUp(ctx, allocs, base, o.size, fails); err != nil {
		return nil, err
	}

	cpu0, err := t.cpuStart()
	if err != nil {
		return nil, err
	}
	gen0 := selfCPU()
	start := time.Now()
	end := start.Add(o.duration)
	interval := time.Duration(float64(time.Second) * float64(o.allocations) / o.rate)
	var senders sync.WaitGroup
	for i, a := range allocs {
		offset := interval * time.Duration(i) / time.Duration(len(allocs))
		senders.Go(func() { a.send(ctx, base, start.Add(offset), end, interval, o.size, fails) })
	}
	senders.Wait()
	elapsed := time.Since(start)
	cpu, sysShare := t.cpuSince(cpu0)
	gen1 := selfCPU()

	var sent, behind int64
	for _, a := range allocs {
		sent += a.sent
		behind += a.behind
	}
	// Let the packets in flight land, then stop the readers.
	for drain := time.Now().Add(time.Second); time.Now().Before(drain) && ctx.Err() == nil; time.Sleep(10 * time.Millisecond) {
		var got int64
		for _, a := range allocs {
			got += a.received.Load()
		}
		if got >= sent {
			break
		}
	}
	for _, a := range allocs {
		a.close()
	}
	readers.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	res := &turnResult{Load: "turn", Target: t.url, Allocations: o.allocations, PacketBytes: o.size, OfferedPerS: o.rate,
		Seconds: elapsed.Seconds(), Sent: sent, Behind: behind}
	var lat []time.Duration
	for _, a := range allocs {
		res.Received += a.received.Load()
		lat = append(lat, a.latency...)
	}
	res.LatencyMs = percentiles(lat)
	res.PacketsPerS = float64(res.Received) / elapsed.Seconds()
	if sent > 0 {
		res.LossPct = 100 * float64(max(sent-res.Received, 0)) / float64(sent)
	}
	res.TargetCPUSeconds, res.TargetSysShare = cpu.Seconds(), sysShare
	res.TargetCores = res.TargetCPUSeconds / elapsed.Seconds()
	if res.Received > 0 {
		res.TargetCPUPerPkt = float64(cpu.Microseconds()) / float64(res.Received)
	}
	res.GenCPUSeconds = (gen1 - gen0).Seconds()
	res.GenCPUShare = res.GenCPUSeconds / elapsed.Seconds()
	res.Failures = fails.snapshot()
	return res, nil
}

// allocate opens a client socket, signs in with REST credentials for user
// and allocates a UDP relay, within 10 s.
func allocate(ctx context.Context, server *net.UDPAddr, secret, user string, fails *failures) (*allocation, error) {
	username, password, err := turn.GenerateLongTermTURNRESTCredentials(secret, user, time.Hour)
	if err != nil {
		return nil, err
	}
	local := "127.0.0.1:0"
	if server.IP.To4() == nil {
		local = "[::1]:0"
	}
	conn, err := net.ListenPacket("udp", local)
	if err != nil {
		return nil, err
	}
	a := &allocation{conn: conn}
	a.client, err = turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server.String(),
		TURNServerAddr: server.String(),
		Username:       username,
		Password:       password,
		Conn:           conn,
		LoggerFactory:  fails,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := a.client.Listen(); err != nil {
		a.close()
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if a.relay, err = a.client.AllocateWithContext(actx); err != nil {
		a.close()
		return nil, fmt.Errorf("%s: %w", user, err)
	}
	return a, nil
}

// close deallocates (without waiting for the answer) and closes the socket,
// which ends the reader. It is idempotent.
func (a *allocation) close() {
	if a.relay != nil {
		a.relay.Close()
	}
	a.client.Close()
	a.conn.Close()
}

// read counts the packets that reach a through its partner, and their
// latency, until a is closed.
func (a *allocation) read(base time.Time, allocations int, fails *failures) {
	buf := make([]byte, 1500)
	for {
		n, _, err := a.relay.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < turnHeader {
			fails.add("short packet")
			continue
		}
		switch buf[8] {
		case phaseWarmup:
			a.warm.Store(true)
		case phaseLoad:
			a.received.Add(1)
			if len(a.latency) < maxRTTSamples/allocations {
				sent := time.Duration(binary.BigEndian.Uint64(buf))
				a.latency = append(a.latency, time.Since(base)-sent)
			}
		}
	}
}

// warmUp has every allocation send to its partner every 20 ms until each
// has received one packet, and 200 ms more: the first packet waits for its
// permission, and the channel bind that follows it carries the rest.
func warmUp(ctx context.Context, allocs []*allocation, base time.Time, size int, fails *failures) error {
	pkt := make([]byte, size)
	pkt[8] = phaseWarmup
	deadline := time.Now().Add(10 * time.Second)
	var allWarm time.Time
	for ctx.Err() == nil {
		for _, a := range allocs {
			binary.BigEndian.PutUint64(pkt, uint64(time.Since(base)))
			if _, err := a.relay.WriteTo(pkt, a.peer); err != nil {
				fails.add("warm-up write: " + err.Error())
			}
		}
		if allWarm.IsZero() {
			n := 0
			for _, a := range allocs {
				if a.warm.Load() {
					n++
				}
			}
			if n == len(allocs) {
				allWarm = time.Now()
			} else if time.Now().After(deadline) {
				return fmt.Errorf("warm-up: %d of %d allocations got no relayed packet within 10 s (failures %v)", len(allocs)-n, len(allocs), fails.snapshot())
			}
		} else if time.Since(allWarm) > 200*time.Millisecond {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ctx.Err()
}

// maxBurst is how many packets a sender that fell behind its schedule sends
// at once; what it still owes after that is skipped and counted (Behind),
// so that a saturated generator shows as such instead of as bursts of loss.
const maxBurst = 8

// send sends packets to a's partner every interval from first until end.
func (a *allocation) send(ctx context.Context, base, first, end time.Time, interval time.Duration, size int, fails *failures) {
	pkt := make([]byte, size)
	pkt[8] = phaseLoad
	next := first
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(end) {
			return
		}
		for n := 0; !next.After(now) && n < maxBurst; n++ {
			binary.BigEndian.PutUint64(pkt, uint64(time.Since(base)))
			if _, err := a.relay.WriteTo(pkt, a.peer); err != nil {
				fails.add("write: " + err.Error())
			} else {
				a.sent++
			}
			next = next.Add(interval)
		}
		if behind := now.Sub(next); behind >= 0 {
			skip := behind/interval + 1
			a.behind += int64(skip)
			next = next.Add(skip * interval)
		}
		wake := next
		if end.Before(wake) {
			wake = end
		}
		time.Sleep(time.Until(wake))
	}
}

// failures counts what went wrong by reason, including what pion's client
// logs at Warn or above (a full receive queue, failed refreshes): it is
// the pion LoggerFactory of every client. Reasons are format strings, a
// small fixed set.
type failures struct {
	mu sync.Mutex
	m  map[string]int
}

func (f *failures) add(reason string) { f.addN(reason, 1) }

func (f *failures) addN(reason string, n int) {
	f.mu.Lock()
	f.m[reason] += n
	f.mu.Unlock()
}

func (f *failures) snapshot() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.m))
	for k, v := range f.m {
		m[k] = v
	}
	return m
}

// NewLogger makes f a pion logging.LoggerFactory.
func (f *failures) NewLogger(scope string) logging.LeveledLogger { return pionLogger{f, scope} }

type pionLogger struct {
	f     *failures
	scope string
}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)     { l.f.add("pion " + l.scope + ": " + msg) }
func (l pionLogger) Warnf(format string, _ ...any) {
	l.f.add("pion " + l.scope + ": " + format)
}
func (l pionLogger) Error(msg string) { l.f.add("pion " + l.scope + ": " + msg) }
func (l pionLogger) Errorf(format string, _ ...any) {
	l.f.add("pion " + l.scope + ": " + format)
}
