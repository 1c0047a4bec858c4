package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/boxsignal/boxsignal/internal/netns"
)

// The STUN load generator is this program run again; under go test that is
// the test binary, so TestMain dispatches the child mode as main does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "stunclient" {
		if err := stunClientMain(os.Args[2:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke keeps the benchmark working: one round of a tiny load against
// both servers. It is skipped without coturn's tools or root unless CI=true.
func TestSmoke(t *testing.T) {
	for _, tool := range []string{"turnserver", "turnutils_uclient"} {
		if _, err := exec.LookPath(tool); err != nil {
			netns.Unavailable(t, "%s not found (apt-get install coturn): %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		netns.Unavailable(t, "turnbench needs root for its network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		netns.Unavailable(t, "iproute2's ip is needed: %v", err)
	}
	start := time.Now()
	rep, err := run(context.Background(), []string{"-rounds", "1", "-clients", "2", "-messages", "200",
		"-interval", "5", "-stun-conns", "4", "-stun-duration", "500ms", "-timeout", "60s", "-relay-timeout", "20s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("smoke run took %v", time.Since(start).Round(time.Millisecond))
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.STUN.Answered == 0 || r.STUN.PerSec <= 0 || r.STUN.ServerCPUus <= 0 {
			t.Errorf("%s STUN: %+v", r.Server, r.STUN)
		}
		if r.Relay.Received == 0 || r.Relay.PacketsPerSec <= 0 || r.Relay.LossPct > 50 {
			t.Errorf("%s relay: %+v", r.Server, r.Relay)
		}
	}
	if len(rep.Summary) == 0 || rep.Summary[0].Ratio == 0 {
		t.Errorf("summary without ratios: %+v", rep.Summary)
	}
}

func TestCPUSeconds(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if s, err := cpuSeconds(os.Getpid()); err != nil || s < 0 {
		t.Fatalf("cpuSeconds(self) = %v, %v", s, err)
	}
}

func TestStat(t *testing.T) {
	if s := stat([]float64{3, 1, 2}); s != (Stat{Median: 2, Min: 1, Max: 3}) {
		t.Errorf("stat = %+v", s)
	}
	if s := stat([]float64{4, 1}); s.Median != 2.5 {
		t.Errorf("stat even = %+v", s)
	}
}
