package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/stun/v4"
	"golang.org/x/sys/unix"
)

// STUNResult is what one STUN Binding run measured: conns UDP sockets, each
// with one request in flight at a time (a closed loop), for a fixed time.
type STUNResult struct {
	Conns       int
	Requests    int64   // sent in the window
	Answered    int64   // Binding success responses matched to their request
	TimeoutPct  float64 // requests unanswered within 1 s, % of Requests
	Window      float64 // seconds
	PerSec      float64 // Answered / Window
	ServerCPUus float64 // server utime+stime in the window per answer, µs
	ServerCores float64
	GenCores    float64 // the Go load generator (a child process) CPU / Window
	RTTus       float64 // mean time from send to matched answer, µs
}

// stunChildResult is what the child prints at the end of its window.
type stunChildResult struct {
	Requests, Answered, Timeouts, Bad int64
	Seconds, CPUSeconds, RTTSum       float64
}

// runSTUN starts this program again inside the namespace as the STUN load
// generator ("stunclient" mode) and samples the server's CPU when the child
// says its window starts and when it reports the end.
func runSTUN(ctx context.Context, ns *benchNS, serverPID, conns int, d time.Duration) (STUNResult, error) {
	res := STUNResult{Conns: conns}
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(ctx, d+20*time.Second)
	defer cancel()
	cmd := ns.command(self, "stunclient",
		"-addr", fmt.Sprintf("%s:%d", listenAddr, listenPort),
		"-conns", strconv.Itoa(conns), "-duration", d.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start STUN load generator: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGKILL) // by PID
		case <-done:
		}
	}()
	var (
		cpu0, cpu1 float64
		started    bool
		child      stunChildResult
		got        bool
	)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Bytes()
		if string(line) == "start" {
			cpu0, _ = cpuSeconds(serverPID)
			started = true
			continue
		}
		cpu1, _ = cpuSeconds(serverPID)
		if err := json.Unmarshal(line, &child); err == nil {
			got = true
		}
	}
	werr := cmd.Wait()
	if !started || !got || werr != nil {
		return res, fmt.Errorf("STUN load generator: %v (started %v, result %v): %s", werr, started, got, stderr.tail(2000))
	}
	res.Requests, res.Answered = child.Requests, child.Answered
	if child.Requests > 0 {
		res.TimeoutPct = 100 * float64(child.Timeouts) / float64(child.Requests)
	}
	if child.Answered > 0 {
		res.RTTus = child.RTTSum / float64(child.Answered) * 1e6
		res.ServerCPUus = (cpu1 - cpu0) / float64(child.Answered) * 1e6
	}
	res.Window = child.Seconds
	res.PerSec = float64(child.Answered) / child.Seconds
	res.ServerCores = (cpu1 - cpu0) / child.Seconds
	res.GenCores = child.CPUSeconds / child.Seconds
	return res, nil
}

// stunClientMain is the child: conns goroutines, each with its own UDP
// socket (so the server's SO_REUSEPORT sockets share the load), send a
// Binding request, wait for its answer (at most 1 s), and repeat, until the
// window of duration ends. Before the window, every socket must get one
// answer (within 10 s), which also waits for the server to be up.
func stunClientMain(args []string) error {
	fs := flag.NewFlagSet("stunclient", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:3478", "server")
	conns := fs.Int("conns", 32, "sockets, one request in flight on each")
	d := fs.Duration("duration", 5*time.Second, "window")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *conns < 1 || *conns > 1024 || *d <= 0 || *d > time.Minute {
		return errors.New("stunclient: want 1 <= conns <= 1024 and 0 < duration <= 1m")
	}
	raddr, err := net.ResolveUDPAddr("udp4", *addr)
	if err != nil {
		return err
	}
	if !raddr.IP.IsLoopback() {
		return fmt.Errorf("stunclient: %v is not loopback", raddr)
	}
	cs := make([]*net.UDPConn, *conns)
	for i := range cs {
		if cs[i], err = net.DialUDP("udp4", nil, raddr); err != nil {
			return err
		}
		defer cs[i].Close()
	}
	// Warm-up: one answered request per socket.
	warm := time.Now().Add(10 * time.Second)
	for _, c := range cs {
		for {
			if time.Now().After(warm) {
				return fmt.Errorf("stunclient: no Binding answer from %v within 10 s", raddr)
			}
			ok, _, err := transact(c, 200*time.Millisecond)
			if errors.Is(err, syscall.ECONNREFUSED) { // not listening yet
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if err != nil {
				return err
			}
			if ok {
				break
			}
		}
	}

	var (
		requests, answered, timeouts, bad atomic.Int64
		rttNanos                          atomic.Int64
		wg                                sync.WaitGroup
	)
	ru0, _ := rusage()
	start := time.Now()
	end := start.Add(*d)
	fmt.Println("start")
	for _, c := range cs {
		wg.Go(func() {
			var n, ok, to, b, rtt int64
			for time.Now().Before(end) {
				n++
				t0 := time.Now()
				good, wrong, err := transact(c, time.Second)
				switch {
				case err != nil:
					b++
				case good:
					ok++
					rtt += int64(time.Since(t0))
				default:
					to++
				}
				b += wrong
			}
			requests.Add(n)
			answered.Add(ok)
			timeouts.Add(to)
			bad.Add(b)
			rttNanos.Add(rtt)
		})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	ru1, _ := rusage()
	return json.NewEncoder(os.Stdout).Encode(stunChildResult{
		Requests: requests.Load(), Answered: answered.Load(), Timeouts: timeouts.Load(), Bad: bad.Load(),
		Seconds: secs, CPUSeconds: ru1 - ru0, RTTSum: float64(rttNanos.Load()) / 1e9,
	})
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

// rusage is this process's user+system CPU seconds.
func rusage() (float64, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, nil
}
