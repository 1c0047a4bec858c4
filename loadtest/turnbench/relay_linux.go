package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// relayLoad is one turnutils_uclient run: clients allocations paired
// client-to-client (-y), each sending messages datagrams of size bytes every
// interval to its partner through both relays, over UDP, with channels and
// without the RTCP allocations (-c).
type relayLoad struct {
	Clients, Messages, Size, IntervalMS int
}

// RelayResult is what one relay run measured. A "relayed packet" is one
// message delivered from a client to its partner: the server receives it on
// the client's 5-tuple, sends it from one relay to the other, receives it
// there and sends it to the partner (two datagrams in, two out).
type RelayResult struct {
	relayLoad
	Sent, Received int64   // uclient's totals
	LossPct        float64 // uclient's "Total lost packets"
	RTTms          float64 // uclient's "Average round trip delay" (1 ms resolution per sample)
	MaxRTTms       float64 // its max
	Window         float64 // seconds of steady sending measured below
	PacketsPerSec  float64 // messages received in Window / Window
	ServerCPUus    float64 // server utime+stime in Window per message received, µs
	ServerCores    float64 // server CPU seconds / Window
	GenCores       float64 // turnutils_uclient CPU seconds / Window
}

var (
	// "7: : start_mclient: msz=20, tot_send_msgs=2884, tot_recv_msgs=2879, ..."
	// and, at the end, the same without msz.
	progressRE = regexp.MustCompile(`start_mclient: (msz=\d+, )?tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
	lostRE     = regexp.MustCompile(`Total lost packets (\d+) \(([\d.]+)%\)`)
	rttRE      = regexp.MustCompile(`Average round trip delay ([\d.]+) ms; min = [\d.]+ ms, max = ([\d.]+) ms`)
)

type sample struct {
	at              time.Time
	sent, recv      int64
	server, uclient float64 // CPU seconds
}

// runRelay runs uclient against the server with PID serverPID, reading its
// once-a-second progress lines as they come, and samples both processes'
// CPU at each. The window runs from the first line after sending began to
// the last line (the totals included) at which the received count grew, so
// client setup and uclient's wait for stragglers are left out.
func runRelay(ctx context.Context, ns *benchNS, uclient string, serverPID int, l relayLoad, user string, limit time.Duration) (RelayResult, error) {
	res := RelayResult{relayLoad: l}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := ns.command(uclient, "-y", "-c",
		"-m", strconv.Itoa(l.Clients), "-n", strconv.Itoa(l.Messages),
		"-l", strconv.Itoa(l.Size), "-z", strconv.Itoa(l.IntervalMS),
		"-u", user, "-W", secret,
		"-p", strconv.Itoa(listenPort), listenAddr)
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return res, fmt.Errorf("start turnutils_uclient: %w", err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGKILL) // by PID
		case <-done:
		}
	}()

	var (
		samples []sample
		tail    []string // last lines, for errors
		final   = false
	)
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if tail = append(tail, line); len(tail) > 20 {
			tail = tail[1:]
		}
		if m := progressRE.FindStringSubmatch(line); m != nil {
			s := sample{at: time.Now()}
			s.sent, _ = strconv.ParseInt(m[2], 10, 64)
			s.recv, _ = strconv.ParseInt(m[3], 10, 64)
			s.server, _ = cpuSeconds(serverPID)
			s.uclient, _ = cpuSeconds(cmd.Process.Pid)
			if m[1] == "" { // the totals, printed once everything is in
				final = true
				res.Sent, res.Received = s.sent, s.recv
			}
			samples = append(samples, s)
		}
		if m := lostRE.FindStringSubmatch(line); m != nil {
			res.LossPct, _ = strconv.ParseFloat(m[2], 64)
		}
		if m := rttRE.FindStringSubmatch(line); m != nil {
			res.RTTms, _ = strconv.ParseFloat(m[1], 64)
			res.MaxRTTms, _ = strconv.ParseFloat(m[2], 64)
		}
	}
	_, _ = io.Copy(io.Discard, pr)
	pr.Close()
	werr := cmd.Wait()
	close(done)
	if ctx.Err() != nil {
		return res, fmt.Errorf("turnutils_uclient stopped (interrupted, or over its %v limit): %w", limit, ctx.Err())
	}
	if werr != nil || !final {
		return res, fmt.Errorf("turnutils_uclient: %v (final totals seen: %v); last output:\n%s", werr, final, joinLines(tail))
	}
	// First sample with traffic, last sample at which recv grew.
	first, last := -1, -1
	for i, s := range samples {
		if first < 0 && s.sent > 0 {
			first = i
		}
		if i > 0 && s.recv > samples[i-1].recv {
			last = i
		}
	}
	if first < 0 || last <= first {
		return res, fmt.Errorf("turnutils_uclient: too few progress lines to measure a window (%d); raise -messages", len(samples))
	}
	a, b := samples[first], samples[last]
	res.Window = b.at.Sub(a.at).Seconds()
	n := float64(b.recv - a.recv)
	res.PacketsPerSec = n / res.Window
	res.ServerCores = (b.server - a.server) / res.Window
	res.GenCores = (b.uclient - a.uclient) / res.Window
	if n > 0 {
		res.ServerCPUus = (b.server - a.server) / n * 1e6
	}
	return res, nil
}

func joinLines(ls []string) string {
	s := ""
	for _, l := range ls {
		s += l + "\n"
	}
	return s
}
