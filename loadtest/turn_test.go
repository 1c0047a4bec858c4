package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/netns"
	"github.com/boxsignal/boxsignal/stunturn"
)

// newSTUNTURN starts a stunturn server in this process on 127.0.0.1, with
// loopback peers allowed (only a test can), and returns the flags that point
// the stun and turn loads at it.
func newSTUNTURN(t *testing.T) []string {
	t.Helper()
	s, err := stunturn.NewServer(stunturn.Config{
		ListenUDP:              []string{"127.0.0.1:0"},
		ListenTCP:              []string{},
		Secrets:                [][]byte{[]byte(benchSecret)},
		AllowLoopbackForTests:  true,
		UserQuota:              -1,
		TotalQuota:             -1,
		BandwidthPerAllocation: -1,
		UnauthRatePerIP:        -1,
		SocketsPerPort:         2,
		Logger:                 slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return []string{"-target", s.Addrs().UDP[0].String(), "-pid", strconv.Itoa(os.Getpid())}
}

// TestSTUNSmoke keeps the stun load working: a few sockets for a moment
// against a stunturn server on loopback.
func TestSTUNSmoke(t *testing.T) {
	target := newSTUNTURN(t)
	res, err := runSTUN(context.Background(), append(target, "-sockets", "4", "-duration", "300ms", "-timeout", "30s"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Answered == 0 || res.BindingsPerS <= 0 || res.Bad != 0 || res.RTTms["samples"].(int) == 0 || res.RTTms["p99"].(float64) <= 0 {
		t.Fatalf("stun run: %+v", res)
	}
}

// TestTURNSmoke keeps the turn load working: two pairs of allocations
// relaying to each other for a moment through a stunturn server on
// loopback.
func TestTURNSmoke(t *testing.T) {
	target := newSTUNTURN(t)
	res, err := runTURN(context.Background(), append(target, "-allocations", "4", "-rate", "400", "-size", "200", "-duration", "500ms", "-timeout", "30s"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Received == 0 || res.LossPct > 20 || res.LatencyMs["samples"].(int) == 0 || res.PacketBytes != 200 {
		t.Fatalf("turn run: %+v", res)
	}
	t.Logf("%d sent, %d received, latency %v, failures %v", res.Sent, res.Received, res.LatencyMs, res.Failures)
}

func TestTURNRefusesBadTargets(t *testing.T) {
	for _, args := range [][]string{
		{"-target", "192.0.2.1:3478", "-pid", "1"},                      // not loopback
		{"-target", "127.0.0.1:3478"},                                   // no -pid
		{"-target", "127.0.0.1:3478", "-pid", "1", "-netns", "other-1"}, // not our namespace
		{"-target", "127.0.0.1:3478", "-pid", "1", "-allocations", "3"}, // odd
	} {
		if _, err := runTURN(context.Background(), append(args, "-timeout", "5s")); err == nil {
			t.Errorf("runTURN(%q) = nil error, want a refusal", args)
		}
	}
}

// TestTURNCompareSmoke keeps the comparison with coturn working: one round
// of tiny STUN and TURN loads against a fresh signald and a fresh coturn in
// a network namespace (the sweep runs the same code with STUN left out).
// It needs root and coturn, which CI has.
func TestTURNCompareSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		netns.Unavailable(t, "turncompare needs root for its network namespace")
	}
	for _, tool := range []string{"ip", "turnserver"} {
		if _, err := exec.LookPath(tool); err != nil {
			netns.Unavailable(t, "%s not found (apt-get install iproute2 coturn): %v", tool, err)
		}
	}
	start := time.Now()
	res, err := runTURNCompare(context.Background(), []string{"-rounds", "1", "-allocations", "4", "-rate", "400",
		"-duration", "300ms", "-sockets", "2", "-stun-duration", "300ms", "-sweep", "", "-timeout", "2m"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("turncompare smoke took %v", time.Since(start).Round(time.Millisecond))
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.TURN == nil || r.TURN.Received == 0 || r.TURN.LossPct > 20 || r.TURN.Server != r.Server {
			t.Errorf("%s TURN: %+v", r.Server, r.TURN)
		}
	}
	for _, r := range res.Runs {
		if r.STUN == nil || r.STUN.Answered == 0 || r.STUN.Server != r.Server {
			t.Errorf("%s STUN: %+v", r.Server, r.STUN)
		}
	}
	if res.Summary[0].Ratio == 0 {
		t.Errorf("summary without ratios: %+v", res.Summary[0])
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, fmt.Sprintf("%s%d-", netnsPrefix, os.Getpid())) {
			t.Errorf("namespace left behind: %s", l)
		}
	}
}

func TestStatOf(t *testing.T) {
	if s := statOf([]float64{3, 1, 2}); s != (stat{Median: 2, Min: 1, Max: 3}) {
		t.Errorf("statOf(3, 1, 2) = %+v", s)
	}
	if s := statOf([]float64{4, 1}); s.Median != 2.5 {
		t.Errorf("statOf(4, 1) = %+v, want median 2.5", s)
	}
}

func TestCPUTimes(t *testing.T) {
	self := &target{pid: os.Getpid()}
	w, err := self.cpuStart()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	if total, sys := self.cpuSince(w); total < 0 || sys < 0 || sys > 1 {
		t.Errorf("cpuSince = %v, %v", total, sys)
	}
}

// TestRemoveStaleNetNS: a namespace left by a loadtest that was killed goes
// at the next one's start; one whose maker still runs stays.
func TestRemoveStaleNetNS(t *testing.T) {
	if os.Geteuid() != 0 {
		netns.Unavailable(t, "network namespaces need root")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-test", netnsPrefix, dead.Process.Pid)
	live := fmt.Sprintf("%s%d-test", netnsPrefix, os.Getpid())
	for _, name := range []string{stale, live} {
		if err := ip("netns", "add", name); err != nil {
			netns.Unavailable(t, "%v", err)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	removeStaleNetNS()
	if _, err := os.Stat("/run/netns/" + stale); err == nil {
		t.Errorf("%s is still there", stale)
	}
	if _, err := os.Stat("/run/netns/" + live); err != nil {
		t.Errorf("%s: %v", live, err)
	}
}
