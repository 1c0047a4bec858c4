package stunturn

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

func TestBinding(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr := s.udp()
			if network == "tcp" {
				addr = s.tcp()
			}
			c := dialTURN(t, network, addr, "", "")
			resp := c.do(stun.BindingRequest)
			var xa stun.XORMappedAddress
			if err := xa.GetFrom(resp); err != nil {
				t.Fatalf("Binding over %s: %v", network, err)
			}
			local := c.conn.LocalAddr().String()
			if got := xa.String(); got != local {
				t.Errorf("XOR-MAPPED-ADDRESS = %s, want %s", got, local)
			}
		})
	}
}

// TestRelayLoopback relays through the server to an echo peer on loopback,
// over UDP and TCP to the server, with IPv4 and IPv6 relays. Loopback peers
// need the test-only override.
func TestRelayLoopback(t *testing.T) {
	s := newTestServer(t, Config{AllowLoopbackForTests: true})
	echo4 := udpEcho(t, "udp4", "127.0.0.1:0")
	echo6 := udpEcho(t, "udp6", "[::1]:0")
	for _, tc := range []struct {
		name    string
		network string
		fam     byte
		peer    netip.AddrPort
	}{
		{"udp/ipv4", "udp", famV4, echo4},
		{"udp/ipv6", "udp", famV6, echo6},
		{"tcp/ipv4", "tcp", famV4, echo4},
		{"tcp/ipv6", "tcp", famV6, echo6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := s.udp()
			if tc.network == "tcp" {
				addr = s.tcp()
			}
			user, pass := restCreds("relay-" + tc.name)
			c := dialTURN(t, tc.network, addr, user, pass)
			relay := c.mustAllocate(protoUDP, tc.fam)
			if relay.Addr().Is4() != (tc.fam == famV4) {
				t.Fatalf("relay %v for family %d", relay, tc.fam)
			}
			if code := c.createPermission(tc.peer); code != 0 {
				t.Fatalf("CreatePermission(%v) = %d", tc.peer, code)
			}
			if code := c.channelBind(0x4001, tc.peer); code != 0 {
				t.Fatalf("ChannelBind(%v) = %d", tc.peer, code)
			}
			for i := range 20 {
				msg := bytes.Repeat([]byte{byte(i)}, 100+i)
				c.sendChannel(0x4001, msg)
				got, err := c.readChannel(2 * time.Second)
				if err != nil {
					t.Fatalf("echo %d: %v", i, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("echo %d: got %d bytes, want %d", i, len(got), len(msg))
				}
			}
		})
	}
	if got := counterValue(t, s.m.bytesToPeer); got < 4*20*100 {
		t.Errorf("relayed_bytes_total{to_peer} = %v, want >= %d", got, 4*20*100)
	}
}

// TestRelayTCPConnect relays over an RFC 6062 TCP allocation: Connect to a
// TCP echo peer, ConnectionBind a data connection, exchange bytes.
func TestRelayTCPConnect(t *testing.T) {
	s := newTestServer(t, Config{AllowLoopbackForTests: true})
	for _, tc := range []struct {
		name string
		fam  byte
		peer netip.AddrPort
	}{
		{"ipv4", famV4, tcpEcho(t, "tcp4", "127.0.0.1:0")},
		{"ipv6", famV6, tcpEcho(t, "tcp6", "[::1]:0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, pass := restCreds("tcp-relay")
			ctl := dialTURN(t, "tcp", s.tcp(), user, pass)
			ctl.mustAllocate(protoTCP, tc.fam)
			code, id := ctl.connect(tc.peer)
			if code != 0 {
				t.Fatalf("Connect(%v) = %d", tc.peer, code)
			}
			data := dialTURN(t, "tcp", s.tcp(), user, pass)
			if code := errCode(data.authed(stun.MethodConnectionBind, attr{stun.AttrConnectionID, id})); code != 0 {
				t.Fatalf("ConnectionBind = %d", code)
			}
			if len(data.f.buf) != 0 {
				t.Fatalf("%d stray bytes after ConnectionBind", len(data.f.buf))
			}
			msg := bytes.Repeat([]byte("turn-tcp "), 1000)
			go func() { _, _ = data.conn.Write(msg) }()
			got := make([]byte, len(msg))
			_ = data.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(data.conn, got); err != nil {
				t.Fatalf("read echo: %v", err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("echo differs")
			}
		})
	}
}

// denyTable lists peer addresses the default filter must refuse, each in the
// form an attacker would send it.
var denyTable = []string{
	// loopback and unspecified, in every IPv4-in-IPv6 disguise
	"127.0.0.1", "127.1.2.3", "127.255.255.254", "0.0.0.0", "0.1.2.3",
	"::1", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0", "::ffff:127.9.9.9",
	"::127.0.0.1", "::0.0.0.1", "64:ff9b::7f00:1", "64:ff9b::", "2002:7f00:1::", "2002:7f00:1::1",
	// link-local and cloud metadata
	"169.254.169.254", "169.254.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
	"2002:a9fe:a9fe::1", "fe80::1", "fe80::a9fe:a9fe",
	// private, CGNAT, ULA, site-local
	"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.0.1",
	"192.168.1.1", "100.64.0.1", "100.127.255.254", "::ffff:10.1.2.3", "::ffff:192.168.1.1",
	"::a00:1", "2002:c0a8:101::1", "64:ff9b::c0a8:101", "fc00::1", "fd12:3456::1", "fec0::1",
	// multicast and broadcast
	"224.0.0.1", "239.255.255.250", "255.255.255.255", "ff02::1", "ff05::1:3",
	// reserved and documentation
	"240.0.0.1", "192.0.0.8", "192.0.2.1", "198.51.100.1", "203.0.113.1",
	"198.18.0.1", "192.88.99.1", "2001:db8::1", "2001::1", "100::1", "3fff::1", "5f00::1",
}

// TestDenyList checks every address of denyTable, and this machine's own
// addresses, against CreatePermission and ChannelBind on a UDP allocation
// and Connect on a TCP allocation of the address's family, without the
// loopback override. All must be refused with 403 by the guard.
func TestDenyList(t *testing.T) {
	s := newTestServer(t, Config{})
	addrs := append([]string(nil), denyTable...)
	var self int
	for _, a := range localAddrs() {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			addrs = append(addrs, a.String())
			self++
		}
	}
	t.Logf("%d addresses, %d of them this machine's", len(addrs), self)
	if len(addrs) < 40 {
		t.Fatalf("deny table has %d addresses, want >= 40", len(addrs))
	}

	user, pass := restCreds("attacker")
	clients := map[byte][2]*turnClient{}
	for _, fam := range []byte{famV4, famV6} {
		u := dialTURN(t, "udp", s.udp(), user, pass)
		u.mustAllocate(protoUDP, fam)
		tc := dialTURN(t, "tcp", s.tcp(), user, pass)
		tc.mustAllocate(protoTCP, fam)
		clients[fam] = [2]*turnClient{u, tc}
	}
	for _, a := range addrs {
		addr := netip.MustParseAddr(a)
		peer := netip.AddrPortFrom(addr, 3478)
		fam := byte(famV6)
		if addr.Unmap().Is4() {
			fam = famV4 // pion treats ::ffff:a.b.c.d as IPv4
		}
		c := clients[fam]
		if code := c[0].createPermission(peer); code != 403 {
			t.Errorf("CreatePermission(%s) = %d, want 403", a, code)
		}
		if code := c[0].channelBind(0x4000, peer); code != 403 {
			t.Errorf("ChannelBind(%s) = %d, want 403", a, code)
		}
		if code, _ := c[1].connect(peer); code != 403 {
			t.Errorf("Connect(%s) = %d, want 403", a, code)
		}
	}
	var denied float64
	for _, r := range denyReasons {
		denied += counterValue(t, s.m.deniedPeers.WithLabelValues(string(r)))
	}
	if want := float64(3 * len(addrs)); denied != want {
		t.Errorf("denied_peers_total = %v, want %v", denied, want)
	}
	if got := counterValue(t, s.m.deniedPeers.WithLabelValues(string(reasonSelf))); got != float64(3*self) {
		t.Errorf(`denied_peers_total{reason="self"} = %v, want %v`, got, 3*self)
	}
}

func TestUserQuota(t *testing.T) {
	s := newTestServer(t, Config{UserQuota: 2, TotalQuota: 10})
	user, pass := restCreds("alice")
	for i := range 2 {
		c := dialTURN(t, "udp", s.udp(), user, pass)
		if _, code := c.allocate(protoUDP, famV4); code != 0 {
			t.Fatalf("allocation %d: %d", i+1, code)
		}
	}
	// Another credential for the same user shares the quota.
	user2, pass2 := NewCredentials(testSecret, "alice", 2*time.Hour, time.Now())
	c := dialTURN(t, "tcp", s.tcp(), user2, pass2)
	if _, code := c.allocate(protoUDP, famV4); code != 486 {
		t.Fatalf("allocation 3 of alice = %d, want 486", code)
	}
	bob, bobPass := restCreds("bob")
	if _, code := dialTURN(t, "udp", s.udp(), bob, bobPass).allocate(protoUDP, famV4); code != 0 {
		t.Fatalf("bob's allocation = %d, want success", code)
	}
	if got := counterValue(t, s.m.quotaRejections.WithLabelValues(quotaUser)); got != 1 {
		t.Errorf("quota_rejections_total{user_allocations} = %v, want 1", got)
	}
}

func TestTotalQuota(t *testing.T) {
	s := newTestServer(t, Config{TotalQuota: 3})
	for i := range 4 {
		user, pass := restCreds("u" + string(rune('a'+i)))
		_, code := dialTURN(t, "udp", s.udp(), user, pass).allocate(protoUDP, famV4)
		want := 0
		if i == 3 {
			want = 486
		}
		if code != want {
			t.Fatalf("allocation %d = %d, want %d", i+1, code, want)
		}
	}
}

func TestMaxPermissions(t *testing.T) {
	s := newTestServer(t, Config{MaxPermissions: 2, AllowLoopbackForTests: true})
	user, pass := restCreds("perm")
	c := dialTURN(t, "udp", s.udp(), user, pass)
	c.mustAllocate(protoUDP, famV4)
	p := func(a string, port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), port) }
	for _, tc := range []struct {
		what string
		code int
		do   func() int
	}{
		{"perm 127.0.0.1", 0, func() int { return c.createPermission(p("127.0.0.1", 1)) }},
		{"perm 127.0.0.2", 0, func() int { return c.createPermission(p("127.0.0.2", 1)) }},
		{"perm 127.0.0.1 again", 0, func() int { return c.createPermission(p("127.0.0.1", 2)) }},
		{"perm 127.0.0.3", 508, func() int { return c.createPermission(p("127.0.0.3", 1)) }},
		{"chan 1", 0, func() int { return c.channelBind(0x4000, p("127.0.0.1", 1)) }},
		{"chan 2", 0, func() int { return c.channelBind(0x4001, p("127.0.0.1", 2)) }},
		{"chan 1 refresh", 0, func() int { return c.channelBind(0x4000, p("127.0.0.1", 1)) }},
		{"chan 3", 508, func() int { return c.channelBind(0x4002, p("127.0.0.2", 3)) }},
	} {
		if got := tc.do(); got != tc.code {
			t.Errorf("%s = %d, want %d", tc.what, got, tc.code)
		}
	}
}

func TestCredentials(t *testing.T) {
	oldSecret := []byte("the-old-secret-0123456789")
	s := newTestServer(t, Config{Secrets: [][]byte{testSecret, oldSecret}, StaticUsers: map[string]string{"ops": "hunter22"}})
	expired, expiredPass := NewCredentials(testSecret, "late", -time.Minute, time.Now())
	forged, forgedPass := NewCredentials([]byte("not-the-secret-at-all"), "mallory", time.Hour, time.Now())
	old, oldPass := NewCredentials(oldSecret, "rotating", time.Hour, time.Now())
	fresh, freshPass := restCreds("fresh")
	for _, tc := range []struct {
		name, user, pass string
		network          string
		want             int
	}{
		{"fresh", fresh, freshPass, "udp", 0},
		{"old secret", old, oldPass, "udp", 0},
		{"old secret tcp", old, oldPass, "tcp", 0},
		{"static", "ops", "hunter22", "udp", 0},
		{"static wrong password", "ops", "hunter2", "udp", 401},
		{"expired", expired, expiredPass, "udp", 401},
		{"expired tcp", expired, expiredPass, "tcp", 401},
		{"wrong secret", forged, forgedPass, "udp", 401},
		{"unknown user", "nobody", "x", "udp", 401},
		{"user:expiry order", "alice:" + fresh[:10], freshPass, "udp", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := s.udp()
			if tc.network == "tcp" {
				addr = s.tcp()
			}
			_, code := dialTURN(t, tc.network, addr, tc.user, tc.pass).allocate(protoUDP, famV4)
			if code != tc.want {
				t.Errorf("Allocate as %q = %d, want %d", tc.user, code, tc.want)
			}
		})
	}
	if got := counterValue(t, s.m.authFailures.WithLabelValues(authExpired)); got < 2 {
		t.Errorf("auth_failures_total{expired} = %v, want >= 2", got)
	}
	if got := counterValue(t, s.m.authFailures.WithLabelValues(authBadIntegrity)); got < 2 {
		t.Errorf("auth_failures_total{bad_integrity} = %v, want >= 2", got)
	}
}

// TestAllocationEndsAtExpiry: an allocation made with a credential that
// expires in 2 s is gone 2 s later, although its lifetime is 10 min.
func TestAllocationEndsAtExpiry(t *testing.T) {
	s := newTestServer(t, Config{})
	now := time.Now()
	user, pass := NewCredentials(testSecret, "short", 2*time.Second, now)
	c := dialTURN(t, "udp", s.udp(), user, pass)
	relay := c.mustAllocate(protoUDP, famV4)
	if n := s.AllocationCount(); n != 1 {
		t.Fatalf("AllocationCount = %d, want 1", n)
	}
	exp, _, _ := parseREST(user)
	time.Sleep(time.Until(exp))
	waitFor(t, "allocation to end", func() bool { return s.AllocationCount() == 0 })
	if late := time.Since(exp); late > time.Second {
		t.Errorf("allocation ended %v after its credential", late)
	}
	// The relay port is closed.
	pc, err := net.ListenPacket("udp4", relay.String())
	if err != nil {
		t.Errorf("relay port still bound after expiry: %v", err)
	} else {
		pc.Close()
	}
	if code := c.refresh(time.Minute); code == 0 {
		t.Error("Refresh with an expired credential succeeded")
	}
}

// TestBandwidthPerAllocation sends at twice the cap for 2.5 s and checks that
// the peer receives the cap, within 10%.
func TestBandwidthPerAllocation(t *testing.T) {
	const limit = 200_000 // bytes/s
	s := newTestServer(t, Config{BandwidthPerAllocation: limit, AllowLoopbackForTests: true})
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	peer := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	user, pass := restCreds("bw")
	c := dialTURN(t, "udp", s.udp(), user, pass)
	c.mustAllocate(protoUDP, famV4)
	if code := c.channelBind(0x4000, peer); code != 0 {
		t.Fatalf("ChannelBind = %d", code)
	}

	got := make(chan int)
	const window = 2500 * time.Millisecond
	go func() {
		total := 0
		buf := make([]byte, 2048)
		_ = sink.SetReadDeadline(time.Now().Add(window + 500*time.Millisecond))
		for {
			n, _, err := sink.ReadFrom(buf)
			if err != nil {
				break
			}
			total += n
		}
		got <- total
	}()
	payload := make([]byte, 1000)
	start := time.Now()
	sent := 0
	for time.Since(start) < window && sent < 2*limit*3 {
		// 2x the cap: 400 packets/s in bursts of 4 every 10 ms.
		for range 4 {
			c.sendChannel(0x4000, payload)
			sent += len(payload)
		}
		time.Sleep(time.Until(start.Add(time.Duration(sent/4000) * 10 * time.Millisecond)))
	}
	elapsed := time.Since(start)
	received := <-got
	rate := float64(received) / elapsed.Seconds()
	t.Logf("sent %d B, peer received %d B in %v: %.0f B/s (cap %d B/s)", sent, received, elapsed, rate, limit)
	if rate < 0.9*limit || rate > 1.1*limit {
		t.Errorf("relayed rate %.0f B/s, want %d ±10%%", rate, limit)
	}
	if counterValue(t, s.m.dropBandwidth) == 0 {
		t.Error("dropped_packets_total{bandwidth} = 0, want > 0")
	}
}

// TestBandwidthTotal: two allocations share a total cap.
func TestBandwidthTotal(t *testing.T) {
	const limit = 200_000
	s := newTestServer(t, Config{BandwidthTotal: limit, BandwidthPerAllocation: -1, AllowLoopbackForTests: true})
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	peer := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	var cs []*turnClient
	for _, u := range []string{"bw1", "bw2"} {
		user, pass := restCreds(u)
		c := dialTURN(t, "udp", s.udp(), user, pass)
		c.mustAllocate(protoUDP, famV4)
		if code := c.channelBind(0x4000, peer); code != 0 {
			t.Fatalf("ChannelBind = %d", code)
		}
		cs = append(cs, c)
	}
	got := make(chan int)
	const window = 2500 * time.Millisecond
	go func() {
		total := 0
		buf := make([]byte, 2048)
		_ = sink.SetReadDeadline(time.Now().Add(window + 500*time.Millisecond))
		for {
			n, _, err := sink.ReadFrom(buf)
			if err != nil {
				break
			}
			total += n
		}
		got <- total
	}()
	payload := make([]byte, 1000)
	start := time.Now()
	sent := 0
	for time.Since(start) < window && sent < 2*limit*3 {
		for _, c := range cs { // 2 x 200 packets/s = 2x the cap
			c.sendChannel(0x4000, payload)
			c.sendChannel(0x4000, payload)
			sent += 2 * len(payload)
		}
		time.Sleep(time.Until(start.Add(time.Duration(sent/4000) * 10 * time.Millisecond)))
	}
	elapsed := time.Since(start)
	rate := float64(<-got) / elapsed.Seconds()
	t.Logf("total relayed %.0f B/s (cap %d B/s)", rate, limit)
	if rate < 0.9*limit || rate > 1.1*limit {
		t.Errorf("relayed rate %.0f B/s, want %d ±10%%", rate, limit)
	}
}

// TestUnauthRateLimit: a flood of Binding requests from one IP is answered
// only up to the burst plus the rate.
func TestUnauthRateLimit(t *testing.T) {
	s := newTestServer(t, Config{UnauthRatePerIP: 5, SocketsPerPort: 1}) // burst 20
	c, err := net.Dial("udp", s.udp().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 200 {
		m := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		if _, err := c.Write(m.Raw); err != nil {
			t.Fatal(err)
		}
	}
	answered := 0
	buf := make([]byte, 1500)
	for {
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			break
		}
		answered++
	}
	t.Logf("answered %d of 200", answered)
	if answered < 15 || answered > 30 {
		t.Errorf("answered %d of 200 Binding requests, want about 20", answered)
	}
	if got := counterValue(t, s.m.dropUnauth); got < 150 {
		t.Errorf("dropped_packets_total{unauth_rate} = %v, want >= 150", got)
	}
}

// TestClose: Close ends allocations on every transport, closes client TCP
// connections and relay ports, and is idempotent.
func TestClose(t *testing.T) {
	cfg := Config{
		ListenUDP: []string{"127.0.0.1:0"}, ListenTCP: []string{"127.0.0.1:0"},
		Secrets: [][]byte{testSecret}, AllowLoopbackForTests: true, SocketsPerPort: 2,
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	user, pass := restCreds("closer")
	var relays []netip.AddrPort
	for i := range 4 {
		c := dialTURN(t, "udp", s.Addrs().UDP[0], user, pass)
		relays = append(relays, c.mustAllocate(protoUDP, byte(famV4+i%2)))
	}
	tc := dialTURN(t, "tcp", s.Addrs().TCP[0], user, pass)
	tc.mustAllocate(protoUDP, famV4)
	tcpRelay := dialTURN(t, "tcp", s.Addrs().TCP[0], user, pass)
	tcpRelay.mustAllocate(protoTCP, famV4)
	if code, _ := tcpRelay.connect(tcpEcho(t, "tcp4", "127.0.0.1:0")); code != 0 {
		t.Fatalf("Connect = %d", code)
	}
	if n := s.AllocationCount(); n != 6 {
		t.Fatalf("AllocationCount = %d, want 6", n)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(start))
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := s.AllocationCount(); n != 0 {
		t.Errorf("AllocationCount after Close = %d", n)
	}
	for _, r := range relays {
		network := "udp4"
		if r.Addr().Is6() {
			network = "udp6"
		}
		pc, err := net.ListenPacket(network, r.String())
		if err != nil {
			t.Errorf("relay %v still bound after Close: %v", r, err)
			continue
		}
		pc.Close()
	}
	_ = tc.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := tc.conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client TCP read after Close = %v, want EOF", err)
	}
}

// TestReusePortSockets: SocketsPerPort sockets share one port, and clients
// on different source ports are served by more than one of them.
func TestReusePortSockets(t *testing.T) {
	conns, err := listenUDP(t.Context(), "127.0.0.1:0", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addr := conns[0].LocalAddr().String()
	for _, c := range conns[1:] {
		if c.LocalAddr().String() != addr {
			t.Fatalf("socket on %v, want %v", c.LocalAddr(), addr)
		}
	}
	used := make(map[int]bool)
	for range 32 {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("x"))
		c.Close()
	}
	buf := make([]byte, 16)
	for i, pc := range conns {
		_ = pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := pc.ReadFrom(buf); err == nil {
			used[i] = true
		}
	}
	if len(used) < 2 {
		t.Errorf("32 clients reached %d of 4 sockets, want several", len(used))
	}
}

// TestUnpermittedPeerNotCounted: datagrams to a relay from a peer without a
// permission are dropped before they are counted or charged to the
// allocation's bandwidth.
func TestUnpermittedPeerNotCounted(t *testing.T) {
	s := newTestServer(t, Config{AllowLoopbackForTests: true, BandwidthPerAllocation: 20_000})
	user, pass := restCreds("noperm")
	c := dialTURN(t, "udp", s.udp(), user, pass)
	relay := c.mustAllocate(protoUDP, famV4)
	peer := udpEcho(t, "udp4", "127.0.0.1:0")
	if code := c.channelBind(0x4000, peer); code != 0 {
		t.Fatalf("ChannelBind = %d", code)
	}
	stranger, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	for range 100 {
		_, _ = stranger.WriteTo(make([]byte, 1000), net.UDPAddrFromAddrPort(relay))
	}
	// The allocation's 20 kB/s budget is intact: an echo still gets through.
	echoThrough(t, c, 0x4000)
	if got := counterValue(t, s.m.bytesToClient); got != 10*200 {
		t.Errorf("relayed_bytes_total{to_client} = %v, want %d (the echoes only)", got, 10*200)
	}
	if got := counterValue(t, s.m.dropBandwidth); got != 0 {
		t.Errorf("dropped_packets_total{bandwidth} = %v, want 0", got)
	}
}
