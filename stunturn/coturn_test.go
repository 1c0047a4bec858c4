package stunturn

import (
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// coturn's test clients (Debian package coturn) against our server. .ci/run
// installs them; under CI=true a missing tool fails the test.

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (apt-get install coturn): %v", name, err)
	}
	t.Skipf("%s not found (apt-get install coturn); skipping outside CI", name)
	return ""
}

// runTool runs a coturn tool for at most limit and returns its output. The
// process is killed by PID (exec.CommandContext) if it overruns.
func runTool(t *testing.T, limit time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s: %v in %v", name, strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond))
	return string(out), err
}

func port(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// coturnSecret is printable: turnutils_uclient -W takes the secret as text.
const coturnSecret = "coturn-interop-secret-0123456789"

func TestCoturnSTUNClient(t *testing.T) {
	requireTool(t, "turnutils_stunclient")
	s := newTestServer(t, Config{})
	out, err := runTool(t, 20*time.Second, "turnutils_stunclient", "-p", port(s.udp()), "127.0.0.1")
	if err != nil {
		t.Fatalf("turnutils_stunclient: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`UDP reflexive addr: 127\.0\.0\.1:\d+`).MatchString(out) {
		t.Fatalf("no reflexive address in output:\n%s", out)
	}
}

var (
	lostRE  = regexp.MustCompile(`Total lost packets (\d+) \(([\d.]+)%\)`)
	totalRE = regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`)
)

func lastMatch(re *regexp.Regexp, s string) []string {
	all := re.FindAllStringSubmatch(s, -1)
	if len(all) == 0 {
		return nil
	}
	return all[len(all)-1]
}

// newSamePortServer starts a test server whose UDP and TCP listeners share
// one port, as coturn's clients expect (-p names both).
func newSamePortServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cfg.ListenUDP, cfg.ListenTCP = []string{addr}, []string{addr}
		if cfg.Secrets == nil {
			cfg.Secrets = [][]byte{testSecret}
		}
		cfg.Registerer = nil
		if s, err := NewServer(cfg); err == nil {
			s.Close()
			return newTestServer(t, cfg)
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil
}

// TestCoturnUClient relays a modest load with turnutils_uclient and REST
// credentials (-W): client to client over UDP and over TCP, and to a UDP
// echo peer. Loss must be 0%.
func TestCoturnUClient(t *testing.T) {
	requireTool(t, "turnutils_uclient")
	// Four uclient runs of 10 clients start at once from 127.0.0.1, more
	// than the default per-IP burst of unauthenticated requests allows.
	s := newSamePortServer(t, Config{Secrets: [][]byte{[]byte(coturnSecret)}, AllowLoopbackForTests: true,
		UnauthRatePerIP: 1000})
	echo := udpEcho(t, "udp4", "127.0.0.1:0")
	// A modest load: per run 6 clients (an even number: -y pairs them) each sending 100 messages of 500 B at
	// 50/s and receiving them back, 4 runs at once: ~1000 datagrams/s into
	// the server. -race slows the server several times, and CI runs other
	// packages' tests beside these on 2 cores.
	const clients, msgs = 6, 100
	common := []string{"-m", strconv.Itoa(clients), "-n", strconv.Itoa(msgs), "-l", "500", "-z", "20",
		"-W", coturnSecret, "-p", port(s.udp())}
	cases := []struct {
		name string
		args []string
	}{
		{"udp", []string{"-y", "-c"}},
		{"tcp", []string{"-t", "-y", "-c"}},
		{"udp-peer", []string{"-c", "-e", "127.0.0.1", "-r", strconv.Itoa(int(echo.Port()))}},
		{"tcp-relay", []string{"-T"}}, // RFC 6062, pion v5 only
	}
	// The runs are mostly waiting, so run them at once (t.Parallel would
	// allow only GOMAXPROCS at a time).
	type result struct {
		out string
		err error
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	for i, tc := range cases {
		// One user per run: each stays within the default UserQuota.
		args := append(append(append([]string{"-u", "uclient-" + tc.name}, tc.args...), common...), "127.0.0.1")
		wg.Go(func() {
			out, err := runTool(t, 60*time.Second, "turnutils_uclient", args...)
			results[i] = result{out, err}
		})
	}
	wg.Wait()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := results[i].out, results[i].err
			if err != nil {
				t.Fatalf("turnutils_uclient: %v\n%s", err, tail(out, 30))
			}
			tot := lastMatch(totalRE, out)
			lost := lastMatch(lostRE, out)
			if tot == nil || lost == nil {
				t.Fatalf("no summary in output:\n%s", tail(out, 30))
			}
			t.Logf("sent %s, received %s, lost %s (%s%%)", tot[1], tot[2], lost[1], lost[2])
			if want := strconv.Itoa(clients * msgs); tot[1] != want || tot[2] != want || lost[1] != "0" {
				t.Errorf("sent %s received %s lost %s, want %s/%s/0\n%s", tot[1], tot[2], lost[1], want, want, tail(out, 30))
			}
		})
	}
	if got := counterValue(t, s.m.allocationsTotal); got < 4*clients {
		t.Errorf("allocations_total = %v, want >= %d", got, 4*clients)
	}
}

// TestCoturnUClientRefused: a credential signed with another secret and an
// expired one are refused.
func TestCoturnUClientRefused(t *testing.T) {
	requireTool(t, "turnutils_uclient")
	s := newTestServer(t, Config{Secrets: [][]byte{[]byte(coturnSecret)}, AllowLoopbackForTests: true})
	expUser, expPass := NewCredentials([]byte(coturnSecret), "late", -time.Hour, time.Now())
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"wrong secret", []string{"-W", "some-other-secret-0123456789"}},
		{"expired", []string{"-u", expUser, "-w", expPass}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"-y", "-c", "-m", "2", "-n", "5", "-p", port(s.udp())}, tc.args...), "127.0.0.1")
			if tc.args[0] == "-W" {
				args = append([]string{"-u", "mallory"}, args...)
			}
			out, err := runTool(t, 30*time.Second, "turnutils_uclient", args...)
			if err == nil || !strings.Contains(out, "Cannot complete Allocation") {
				t.Errorf("uclient with %s: err %v, want refusal\n%s", tc.name, err, tail(out, 15))
			}
		})
	}
	if n := s.AllocationCount(); n != 0 {
		t.Errorf("AllocationCount = %d, want 0", n)
	}
	if got := counterValue(t, s.m.authFailures.WithLabelValues(authBadIntegrity)) +
		counterValue(t, s.m.authFailures.WithLabelValues(authExpired)); got == 0 {
		t.Error("auth_failures_total = 0")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
