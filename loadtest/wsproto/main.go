// Command wsproto is the throw-away prototype used to pick the WebSocket
// connection layer for signald (the WebTorrent tracker). See
// docs/websocket-choice.md for the method, the numbers and the decision.
//
// It runs a trivial WebSocket server with one of four candidate stacks and a
// separate client load generator process, and prints one result line:
//
//	go run ./loadtest/wsproto -impl a|b|c|d -mode idle -n 15000
//	go run ./loadtest/wsproto -impl a|b|c|d -mode echo -n 1000 -duration 10s
//
// Without -role the process is the orchestrator: it re-executes itself as
// "-role server" and "-role client" (so each side gets its own open-file
// limit), talks to both over stdin/stdout, and reads the server's CPU time
// from /proc. All traffic stays on 127.0.0.1 and every wait is bounded.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

type options struct {
	impl     string
	mode     string
	role     string
	addr     string
	n        int
	msgSize  int
	duration time.Duration
	settle   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.impl, "impl", "a", "a=coder/websocket, b=gobwas/ws+epoll, c=net/http+nbio poller, d=nbhttp.Engine")
	flag.StringVar(&o.mode, "mode", "idle", "idle or echo")
	flag.StringVar(&o.role, "role", "", "internal: server or client (empty = orchestrator)")
	flag.StringVar(&o.addr, "addr", "", "internal: server address for -role client")
	flag.IntVar(&o.n, "n", 0, "connections (default 15000 for idle, 1000 for echo)")
	flag.IntVar(&o.msgSize, "msgsize", 0, "message size in bytes (default 300 for idle, 1024 for echo)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "echo: measured run time")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "idle: settle time before reading RSS")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("wsproto[" + o.role + "]: ")
	if o.n == 0 {
		o.n = map[string]int{"idle": 15000, "echo": 1000}[o.mode]
	}
	if o.msgSize == 0 {
		o.msgSize = map[string]int{"idle": 300, "echo": 1024}[o.mode]
	}
	var err error
	switch o.role {
	case "server":
		err = runServer(o)
	case "client":
		err = runClient(o)
	case "":
		err = orchestrate(o)
	default:
		err = fmt.Errorf("unknown -role %q", o.role)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// child is a re-executed copy of this program talking line by line.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChild(args ...string) (*child, error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}, nil
}

// expect waits (bounded) for a line starting with prefix and returns its fields.
func (c *child) expect(prefix string, timeout time.Duration) (map[string]string, error) {
	type res struct {
		line string
		ok   bool
	}
	ch := make(chan res, 1)
	go func() {
		for c.out.Scan() {
			if strings.HasPrefix(c.out.Text(), prefix) {
				ch <- res{c.out.Text(), true}
				return
			}
		}
		ch <- res{}
	}()
	select {
	case r := <-ch:
		if !r.ok {
			return nil, fmt.Errorf("child exited before %q", prefix)
		}
		return parseFields(r.line), nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("timeout waiting for %q", prefix)
	}
}

func (c *child) send(cmd string) error {
	_, err := io.WriteString(c.in, cmd+"\n")
	return err
}

// stop closes stdin (the child exits on EOF) and kills it if it lingers.
func (c *child) stop() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

func parseFields(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

func num(m map[string]string, k string) float64 {
	v, _ := strconv.ParseFloat(m[k], 64)
	return v
}

func orchestrate(o options) error {
	common := []string{"-impl", o.impl, "-mode", o.mode, "-n", strconv.Itoa(o.n), "-msgsize", strconv.Itoa(o.msgSize),
		"-duration", o.duration.String(), "-settle", o.settle.String()}
	srv, err := startChild(append([]string{"-role", "server"}, common...)...)
	if err != nil {
		return err
	}
	defer srv.stop()
	ready, err := srv.expect("ADDR", 10*time.Second)
	if err != nil {
		return err
	}
	if err := srv.send("stats"); err != nil {
		return err
	}
	base, err := srv.expect("STATS", 30*time.Second)
	if err != nil {
		return err
	}
	cl, err := startChild(append([]string{"-role", "client", "-addr", ready["addr"]}, common...)...)
	if err != nil {
		return err
	}
	defer cl.stop()
	conn, err := cl.expect("READY", 120*time.Second)
	if err != nil {
		return err
	}
	if int(num(conn, "conns")) != o.n {
		return fmt.Errorf("client connected only %v of %d", conn["conns"], o.n)
	}
	// Wait until the server has seen every first message.
	var cnt map[string]string
	for deadline := time.Now().Add(30 * time.Second); ; {
		if err := srv.send("count"); err != nil {
			return err
		}
		if cnt, err = srv.expect("COUNT", 10*time.Second); err != nil {
			return err
		}
		if int(num(cnt, "peers")) >= o.n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	pid := srv.cmd.Process.Pid
	switch o.mode {
	case "idle":
		if err := srv.send("stats"); err != nil {
			return err
		}
		st, err := srv.expect("STATS", 60*time.Second)
		if err != nil {
			return err
		}
		drss := num(st, "rss") - num(base, "rss")
		fmt.Printf("RESULT impl=%s mode=idle conns=%d peers=%s rss_base_kib=%.0f rss_kib=%.0f bytes_per_conn=%.0f heap_per_conn=%.0f goroutines=%s goroutines_base=%s\n",
			o.impl, o.n, st["peers"], num(base, "rss")/1024, num(st, "rss")/1024, drss/float64(o.n),
			(num(st, "heapinuse")+num(st, "stackinuse")-num(base, "heapinuse")-num(base, "stackinuse"))/float64(o.n),
			st["goroutines"], base["goroutines"])
	case "echo":
		cpu0, err := cpuTime(pid)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := cl.send("go"); err != nil {
			return err
		}
		done, err := cl.expect("DONE", o.duration+30*time.Second)
		if err != nil {
			return err
		}
		cpu1, _ := cpuTime(pid)
		el := time.Since(t0)
		if err := srv.send("count"); err != nil {
			return err
		}
		cnt1, err := srv.expect("COUNT", 10*time.Second)
		if err != nil {
			return err
		}
		relayed := num(cnt1, "relayed") - num(cnt, "relayed")
		fmt.Printf("RESULT impl=%s mode=echo conns=%d msgsize=%d seconds=%.1f relayed=%.0f client_received=%s msgs_per_s=%.0f server_cpu_s=%.2f cpu_us_per_msg=%.2f goroutines=%s\n",
			o.impl, o.n, o.msgSize, el.Seconds(), relayed, done["received"], relayed/el.Seconds(),
			(cpu1 - cpu0).Seconds(), (cpu1-cpu0).Seconds()*1e6/relayed, cnt1["goroutines"])
	default:
		return fmt.Errorf("unknown -mode %q", o.mode)
	}
	return nil
}

// cpuTime returns utime+stime of a process from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the ")" that closes the command name; utime, stime are 14, 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // sysconf(_SC_CLK_TCK) on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}
