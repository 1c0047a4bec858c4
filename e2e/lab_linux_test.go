package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/boxsignal/boxsignal/internal/bugoutlab"
	"github.com/boxsignal/boxsignal/internal/chromium"
	"github.com/boxsignal/boxsignal/internal/netns"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	// buildBudget bounds go build of signald and peer, which a cold cache
	// makes slow.
	buildBudget = 3 * time.Minute
	// scenarioBudget bounds one scenario from building its namespaces to
	// the last check; three in a row (the broken two run side by side) and
	// the go-messageboard scenario (messageboardBudget) keep the lab under
	// three minutes with a cached build.
	scenarioBudget = 40 * time.Second
	// connectTimeout is how long the pages have to see each other.
	connectTimeout = 20 * time.Second
	// connectBound is the "time to connect" check's limit.
	connectBound = 10 * time.Second
	// stepTimeout bounds each later step (a message, an RPC, getStats).
	stepTimeout = 10 * time.Second

	trackerPort = "8000" // signald: tracker, /ice, /healthz
	pagePort    = "8080" // the lab's page server, in the box namespace
	turnPort    = "3478"
)

// outcome is what a scenario's pages should manage.
type outcome int

const (
	connectDirect outcome = iota // connect without a relay (host, srflx or prflx pairs)
	connectRelay                 // connect through the Box's TURN relay
	stayApart                    // not connect at all: a deliberately broken setup
)

// A scenario is one run of the lab: its NAT, how the Box's TURN is set up,
// and what the pages should manage.
type scenario struct {
	name string
	nat  natMode
	// refuseRelay leaves out -turn-allow-peers: TURN allocates, but its
	// production deny-list refuses to relay to the lab's Internet.
	refuseRelay bool
	// blockTURN makes the Box drop TURN allocations (blockTURNRules);
	// STUN still answers.
	blockTURN bool
	want      outcome
}

var scenarios = []scenario{
	{name: "endpoint-independent", nat: natEndpointIndependent, want: connectDirect},
	{name: "symmetric", nat: natSymmetric, want: connectRelay},
	// The broken setups: without a TURN relay that works, two symmetric
	// NATs keep the pages apart. Each must fail to connect.
	{name: "broken/symmetric-turn-unreachable", nat: natSymmetric, blockTURN: true, want: stayApart},
	{name: "broken/symmetric-turn-refuses-relay", nat: natSymmetric, refuseRelay: true, want: stayApart},
}

// TestLab runs every scenario in a lab of its own and prints a PASS or FAIL
// line per check, then "N passed, M failed". Run it alone with
//
//	go test -v -run Lab ./e2e
//
// or one scenario with -run 'Lab/^symmetric$' (the broken setups are
// Lab/broken/..., the Go messageboard with Bugout's page
// Lab/go-messageboard). Outside CI it skips when it
// is not root or lacks nft, Chromium or the Bugout bundle.
func TestLab(t *testing.T) {
	bin := chromium.Path(t, "E2E_CHROMIUM")
	bundle := bugoutBundle(t)
	if _, err := exec.LookPath("nft"); err != nil {
		netns.Unavailable(t, "e2e: nft is needed (Debian: apt-get install nftables): %v", err)
	}
	if os.Geteuid() != 0 {
		netns.Unavailable(t, "e2e: network namespaces need root, running as uid %d", os.Geteuid())
	}
	signald, peer := buildCommands(t)

	rep := &report{w: t.Output()}
	start := time.Now()
	var broken []scenario
	for _, sc := range scenarios {
		if sc.want == stayApart {
			broken = append(broken, sc)
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			runScenario(t, rep, sc, signald, bin, bundle)
		})
	}
	// The broken setups spend their time waiting for a connection that
	// must not come: side by side, each in its own lab.
	t.Run("broken", func(t *testing.T) {
		for _, sc := range broken {
			t.Run(strings.TrimPrefix(sc.name, "broken/"), func(t *testing.T) {
				t.Parallel()
				runScenario(t, rep, sc, signald, bin, bundle)
			})
		}
	})
	// The Go messageboard in the box, Bugout's own messageboard page in a
	// home.
	t.Run("go-messageboard", func(t *testing.T) {
		runMessageboard(t, rep, signald, peer, bin, bundle)
	})
	rep.note("lab took %v", time.Since(start).Round(100*time.Millisecond))
	rep.note("%s", rep.summary())
	if rep.failed > 0 {
		t.Errorf("%s:\n%s", rep.summary(), strings.Join(rep.failures, "\n"))
	}
}

// page is one home's browser and what its page said at start.
type page struct {
	home    home
	b       *browser
	address string // the page's Bugout address
	ice     []iceServer

	seen    seenResult
	seenErr error
}

type iceServer struct {
	URLs       any    `json:"urls"` // a string or a list, as RTCIceServer allows
	Username   string `json:"username"`
	Credential string `json:"credential"`
}

type seenResult struct {
	Address        string `json:"address"`
	Ms             int    `json:"ms"`
	IceConnectedMs *int   `json:"iceConnectedMs"`
}

type candidate struct {
	Type          string `json:"type"`
	Address       string `json:"address"`
	Port          int    `json:"port"`
	Protocol      string `json:"protocol"`
	RelayProtocol string `json:"relayProtocol"`
}

func (c candidate) String() string {
	s := fmt.Sprintf("%s %s:%d/%s", c.Type, c.Address, c.Port, c.Protocol)
	if c.RelayProtocol != "" {
		s += " (relay over " + c.RelayProtocol + ")"
	}
	return s
}

type candidatePair struct {
	Local  candidate `json:"local"`
	Remote candidate `json:"remote"`
	RTTMs  int       `json:"rttMs"`
}

func (p candidatePair) relayed() bool { return p.Local.Type == "relay" || p.Remote.Type == "relay" }

func runScenario(t *testing.T, rep *report, sc scenario, signald, bin, bundle string) {
	ctx, cancel := context.WithTimeout(t.Context(), scenarioBudget)
	defer cancel()
	check := func(name string, ok bool, format string, args ...any) bool {
		rep.check(sc.name, name, ok, format, args...)
		if !ok {
			t.Fail()
		}
		return ok
	}

	l := newLab(t, sc.nat)
	dns := startDNSSink(t, l)
	box := startBox(ctx, t, l, sc, signald)
	servePage(t, l, bundle, nil)
	if sc.blockTURN {
		must(t, l.box.exec([]byte(blockTURNRules), "nft", "-f", "-"))
	}
	if err := box.waitHealthy(ctx, l); err != nil {
		t.Fatalf("signald: %v\n%s", err, box.log.String())
	}
	defer func() {
		if t.Failed() {
			t.Logf("signald log:\n%s", box.log.String())
		}
	}()

	// Both browsers start, load the page and join the room together.
	var room [8]byte
	rand.Read(room[:])
	pages := []*page{{home: l.a}, {home: l.b}}
	var wg sync.WaitGroup
	errs := make([]error, len(pages))
	for i, p := range pages {
		wg.Go(func() { errs[i] = p.join(ctx, t, bin, "lab-"+hex.EncodeToString(room[:])) })
	}
	wg.Wait()
	defer func() {
		if t.Failed() {
			for _, p := range pages {
				if p.b != nil {
					t.Logf("browser %s log:\n%s", p.home.name, p.b.Log())
				}
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		check("pages load", false, "%v", err)
		return
	}
	for _, p := range pages {
		urls := p.iceURLs()
		check(p.home.name+" ICE servers from /ice", iceFromBox(urls), "%s", strings.Join(urls, " "))
	}

	// Connect: each page waits for the other to be seen.
	for _, p := range pages {
		wg.Go(func() {
			p.seenErr = p.b.eval(ctx, fmt.Sprintf("lab.waitSeen(%d)", connectTimeout.Milliseconds()), &p.seen)
		})
	}
	wg.Wait()
	a, b := pages[0], pages[1]
	connected := a.seenErr == nil && b.seenErr == nil && a.seen.Address == b.address && b.seen.Address == a.address

	if sc.want == stayApart {
		// Apart for the right reason: the offers and answers went through
		// the tracker, only ICE found no way.
		var sigA, sigB int
		errA := a.b.eval(ctx, "lab.signalled()", &sigA)
		errB := b.b.eval(ctx, "lab.signalled()", &sigB)
		blocked := ""
		if sc.blockTURN {
			n, err := counter(l.box, "e2e_block", "allocate")
			blocked = fmt.Sprintf("; TURN Allocate requests dropped by the Box: %d (err %v)", n, err)
		}
		check("pages stay apart", a.seenErr != nil && b.seenErr != nil && sigA > 0 && sigB > 0,
			"A: %s; B: %s; connections signalled through the tracker: A %d, B %d (errors %v, %v)%s; want no peer seen although signalling worked",
			seenText(a), seenText(b), sigA, sigB, errA, errB, blocked)
		checkStray(check, l, dns)
		return
	}
	if !check("seen", connected, "A: %s; B: %s", seenText(a), seenText(b)) {
		checkStray(check, l, dns)
		return
	}
	slowest := time.Duration(max(a.seen.Ms, b.seen.Ms)) * time.Millisecond
	check("time to connect", slowest <= connectBound, "A saw B after %d ms, B saw A after %d ms (ICE connected after %s and %s ms; limit %v)",
		a.seen.Ms, b.seen.Ms, msText(a.seen.IceConnectedMs), msText(b.seen.IceConnectedMs), connectBound)

	// A broadcast each way.
	for _, p := range pages {
		wg.Go(func() {
			from, to := p, a
			if p == a {
				to = b
			}
			text := "hello from " + from.home.name + " " + hex.EncodeToString(room[:4])
			err := from.b.eval(ctx, fmt.Sprintf("lab.send(%s)", jsString(text)), nil)
			var sender string
			if err == nil {
				err = to.b.eval(ctx, fmt.Sprintf("lab.waitMessage(%s, %d)", jsString(text), stepTimeout.Milliseconds()), &sender)
			}
			check("broadcast "+from.home.name+"→"+to.home.name, err == nil && sender == from.address,
				"%q from %s, err %v", text, short(sender), err)
		})
	}
	wg.Wait()

	// An RPC each way: the callee answers with its name and the arguments.
	for _, p := range pages {
		wg.Go(func() {
			caller, callee := p, a
			if p == a {
				callee = b
			}
			nonce := hex.EncodeToString(room[4:])
			var res struct {
				Name string `json:"name"`
				Echo struct {
					Nonce string `json:"nonce"`
				} `json:"echo"`
			}
			err := caller.b.eval(ctx, fmt.Sprintf("lab.rpc(%s, {nonce: %s}, %d)", jsString(callee.address), jsString(nonce), stepTimeout.Milliseconds()), &res)
			check("rpc "+caller.home.name+"→"+callee.home.name, err == nil && res.Name == callee.home.name && res.Echo.Nonce == nonce,
				"whoami = %+v, err %v", res, err)
		})
	}
	wg.Wait()

	// The selected candidate pair of each side, from getStats.
	for _, p := range pages {
		var pairs []candidatePair
		err := p.b.eval(ctx, "lab.pairs()", &pairs)
		ok := err == nil && len(pairs) > 0
		var desc []string
		for _, pr := range pairs {
			desc = append(desc, fmt.Sprintf("local %v ↔ remote %v, rtt %d ms", pr.Local, pr.Remote, pr.RTTMs))
			if sc.want == connectRelay != pr.relayed() {
				ok = false
			}
		}
		want := "no relay"
		if sc.want == connectRelay {
			want = "a relay candidate"
		}
		check(p.home.name+" candidate pair", ok, "%s (want %s), err %v", strings.Join(desc, "; "), want, err)
	}

	checkStray(check, l, dns)
}

// checkStray checks each home's egress counter: no packet to anything but
// the Box and the other home's router.
func checkStray(check func(string, bool, string, ...any) bool, l *lab, dns *dnsSink) {
	for _, h := range []home{l.a, l.b} {
		n, addrs, err := strayPackets(h.ns)
		other := l.b.wan
		if h.name == "B" {
			other = l.a.wan
		}
		check(h.name+" no stray packets", err == nil && n == 0,
			"%d packets to addresses other than the Box (%s) and router %s: %v, err %v", n, boxIP, other, addrs, err)
	}
	if names := dns.asked(); len(names) > 0 {
		check("no name lookups", false, "%s", strings.Join(names, ", "))
	}
}

// join starts the home's browser, loads the lab page from the box and joins
// room.
func (p *page) join(ctx context.Context, t *testing.T, bin, room string) error {
	b, err := startBrowser(ctx, t, p.home.ns, p.home.name, bin)
	if err != nil {
		return err
	}
	p.b = b
	if err := b.open(ctx, "http://"+net.JoinHostPort(boxIP, pagePort)+"/lab.html"); err != nil {
		return fmt.Errorf("browser %s: %w", p.home.name, err)
	}
	opts, _ := json.Marshal(map[string]string{
		"name":    p.home.name,
		"room":    room,
		"tracker": "ws://" + net.JoinHostPort(boxIP, trackerPort),
		"ice":     "http://" + net.JoinHostPort(boxIP, trackerPort) + "/ice",
	})
	var started struct {
		Address    string      `json:"address"`
		IceServers []iceServer `json:"iceServers"`
	}
	if err := b.eval(ctx, "lab.start("+string(opts)+")", &started); err != nil {
		return fmt.Errorf("browser %s: lab.start: %w", p.home.name, err)
	}
	p.address, p.ice = started.Address, started.IceServers
	return nil
}

func (p *page) iceURLs() []string {
	var urls []string
	for _, s := range p.ice {
		switch u := s.URLs.(type) {
		case string:
			urls = append(urls, u)
		case []any:
			for _, x := range u {
				urls = append(urls, fmt.Sprint(x))
			}
		}
	}
	return urls
}

// iceFromBox says whether urls hold a STUN and a TURN URL and all of them
// point at the Box.
func iceFromBox(urls []string) bool {
	stun, turn := false, false
	for _, u := range urls {
		scheme, rest, _ := strings.Cut(u, ":")
		host, _, _ := strings.Cut(rest, "?")
		if h, _, err := net.SplitHostPort(host); err != nil || h != boxIP {
			return false
		}
		stun = stun || scheme == "stun"
		turn = turn || scheme == "turn"
	}
	return stun && turn
}

func seenText(p *page) string {
	if p.seenErr != nil {
		return "saw no one: " + p.seenErr.Error()
	}
	return fmt.Sprintf("saw %s after %d ms", short(p.seen.Address), p.seen.Ms)
}

func msText(ms *int) string {
	if ms == nil {
		return "?"
	}
	return fmt.Sprint(*ms)
}

func short(address string) string {
	if len(address) > 10 {
		return address[:10] + "…"
	}
	return address
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// blockTURNRules make the Box's TURN unreachable while its STUN still
// answers, for a broken setup: every UDP TURN Allocate request (STUN
// message type 0x0003, the first 16 bits of the UDP payload) and all STUN/TURN
// over TCP are dropped. The pages still learn their server-reflexive
// candidates and signal, so they stay apart for want of a relay alone.
const blockTURNRules = `
table inet e2e_block {
	counter allocate {}
	chain input {
		type filter hook input priority filter; policy accept;
		udp dport ` + turnPort + ` @th,64,16 0x0003 counter name "allocate" drop
		tcp dport ` + turnPort + ` drop
	}
}
`

// boxProc is signald running in the box namespace.
type boxProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *bugoutlab.Buffer
}

// startBox starts signald in the box namespace, on the box's address only:
// tracker and /ice on trackerPort, STUN/TURN on turnPort, relayed addresses
// on the box's address. -turn-allow-peers opens the peer filter for the two
// routers' addresses (the lab's "public" ones, in a range the production
// deny-list refuses); the Box's own address stays refused as in production.
// t.Cleanup stops it: SIGTERM, then SIGKILL by PID after 5 s.
func startBox(ctx context.Context, t *testing.T, l *lab, sc scenario, bin string) *boxProc {
	t.Helper()
	args := []string{
		"-addr", net.JoinHostPort(boxIP, trackerPort),
		"-public-host", boxIP,
		"-turn-udp", net.JoinHostPort(boxIP, turnPort),
		"-turn-tcp", net.JoinHostPort(boxIP, turnPort),
		"-turn-relay-ip", boxIP,
		"-turn-relay-ports", "50000-50999",
		"-ice-allow-origins", "http://" + net.JoinHostPort(boxIP, pagePort),
		"-data-dir", t.TempDir(),
	}
	if !sc.refuseRelay {
		args = append(args, "-turn-allow-peers", l.a.wan+"/32,"+l.b.wan+"/32")
	}
	p := &boxProc{done: make(chan struct{}), log: &bugoutlab.Buffer{}}
	p.cmd = l.box.command(ctx, bin, args...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start signald: %v", err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitHealthy polls /healthz from inside the box namespace.
func (p *boxProc) waitHealthy(ctx context.Context, l *lab) error {
	tr := &http.Transport{DialContext: l.box.dial, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	url := "http://" + net.JoinHostPort(boxIP, trackerPort) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s = %d %q", url, resp.StatusCode, body)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was healthy: %v (last poll: %v)", p.cmd.ProcessState, last)
		case <-ctx.Done():
			return fmt.Errorf("not healthy in time: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// servePage serves the lab page, its script and Bugout's bundle from the
// box namespace: a listener made there, served by the test process. more
// adds handlers by path.
func servePage(t *testing.T, l *lab, bundle string, more map[string]http.Handler) {
	t.Helper()
	files := map[string]string{
		"/lab.html":       filepath.Join("testdata", "lab.html"),
		"/lab.js":         filepath.Join("testdata", "lab.js"),
		"/bugout.min.js":  bundle,
		"/favicon.ico":    "", // 404 without a log line
		"/robots.txt":     "",
		"/bugout.min.map": "",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h := more[r.URL.Path]; h != nil {
			h.ServeHTTP(w, r)
			return
		}
		path, ok := files[r.URL.Path]
		if !ok || path == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, r, path)
	})
	ln, err := l.box.listen(net.JoinHostPort(boxIP, pagePort))
	if err != nil {
		t.Fatalf("page server: %v", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// bugoutBundle is the browser bundle that the pinned bugout@0.0.13 package
// ships (installed by bugout/testdata/node/install.sh).
func bugoutBundle(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(moduleRoot(t), "bugout", "testdata", "node", "node_modules", "bugout")
	var pkg struct {
		Version string `json:"version"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil {
		netns.Unavailable(t, "e2e: Bugout's bundle is needed: run bash bugout/testdata/node/install.sh (%v)", err)
	}
	if pkg.Version != "0.0.13" {
		t.Fatalf("e2e: %s holds bugout %s, want 0.0.13", dir, pkg.Version)
	}
	return filepath.Join(dir, "docs", "bugout.min.js")
}

// buildCommands builds cmd/signald and cmd/peer into the test's temporary
// directory, side by side.
func buildCommands(t *testing.T) (signald, peer string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildBudget)
	defer cancel()
	dir, root := t.TempDir(), moduleRoot(t)
	pkgs := []string{"signald", "peer"}
	errs := make([]error, len(pkgs))
	var wg sync.WaitGroup
	for i, name := range pkgs {
		wg.Go(func() {
			build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "signald"), filepath.Join(dir, "peer")
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}
