package stunturn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// turnClient is a minimal TURN client for tests: it sends exactly the
// messages a test asks for (including peer addresses in forms real clients
// never use, like ::ffff:127.0.0.1) and reports the error code it got back.
type turnClient struct {
	t          *testing.T
	conn       net.Conn
	stream     bool // TCP: frames on a byte stream
	f          framer
	user, pass string
	realm      string
	nonce      string
}

const (
	protoUDP = 17
	protoTCP = 6
	famV4    = 1
	famV6    = 2
)

func dialTURN(t *testing.T, network string, server net.Addr, user, pass string) *turnClient {
	t.Helper()
	c, err := net.Dial(network, server.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &turnClient{t: t, conn: c, stream: network == "tcp", user: user, pass: pass}
}

// attr is a raw attribute setter.
type attr struct {
	typ stun.AttrType
	val []byte
}

func (a attr) AddTo(m *stun.Message) error { m.Add(a.typ, a.val); return nil }

func transportAttr(proto byte) attr {
	return attr{stun.AttrRequestedTransport, []byte{proto, 0, 0, 0}}
}

func familyAttr(fam byte) attr { return attr{stun.AttrRequestedAddressFamily, []byte{fam, 0, 0, 0}} }

func channelAttr(ch uint16) attr {
	return attr{stun.AttrChannelNumber, []byte{byte(ch >> 8), byte(ch), 0, 0}}
}

// peerAttr encodes XOR-PEER-ADDRESS with the family of the address as given:
// an IPv4-mapped IPv6 address is sent as IPv6, which stun.XORMappedAddress
// would not do.
type peerAttr netip.AddrPort

func (p peerAttr) AddTo(m *stun.Message) error {
	ap := netip.AddrPort(p)
	a := ap.Addr()
	var v []byte
	cookie := []byte{0x21, 0x12, 0xA4, 0x42}
	port := ap.Port() ^ 0x2112
	if a.Is4() {
		b := a.As4()
		v = []byte{0, 1, byte(port >> 8), byte(port)}
		for i := range 4 {
			v = append(v, b[i]^cookie[i])
		}
	} else {
		b := a.As16()
		v = []byte{0, 2, byte(port >> 8), byte(port)}
		x := append(append([]byte{}, cookie...), m.TransactionID[:]...)
		for i := range 16 {
			v = append(v, b[i]^x[i])
		}
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

func (c *turnClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readMsg returns the next STUN message or ChannelData frame.
func (c *turnClient) readFrame(deadline time.Time) ([]byte, error) {
	_ = c.conn.SetReadDeadline(deadline)
	if !c.stream {
		buf := make([]byte, 65536)
		n, err := c.conn.Read(buf)
		return buf[:n], err
	}
	for {
		fr, err := c.f.next()
		if err != nil {
			return nil, err
		}
		if fr != nil {
			return append([]byte(nil), fr...), nil
		}
		buf := make([]byte, 4096)
		n, err := c.conn.Read(buf)
		if err != nil {
			return nil, err
		}
		c.f.buf = append(c.f.buf, buf[:n]...)
	}
}

// do sends a request and returns the response with the same transaction ID.
// UDP requests are retransmitted; it fails the test on timeout.
func (c *turnClient) do(setters ...stun.Setter) *stun.Message {
	c.t.Helper()
	m, err := c.try(setters...)
	if err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *turnClient) try(setters ...stun.Setter) (*stun.Message, error) {
	req, err := stun.Build(append([]stun.Setter{stun.TransactionID}, setters...)...)
	if err != nil {
		return nil, err
	}
	tries := 1
	if !c.stream {
		tries = 4
	}
	for range tries {
		if _, err := c.conn.Write(req.Raw); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(700 * time.Millisecond)
		if c.stream {
			deadline = time.Now().Add(3 * time.Second)
		}
		for {
			b, err := c.readFrame(deadline)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, err
			}
			if !stun.IsMessage(b) {
				continue
			}
			resp := &stun.Message{Raw: b}
			if resp.Decode() != nil || resp.TransactionID != req.TransactionID {
				continue
			}
			return resp, nil
		}
	}
	return nil, fmt.Errorf("no response to %v", req.Type)
}

func errCode(m *stun.Message) int {
	if m.Type.Class == stun.ClassSuccessResponse {
		return 0
	}
	var ec stun.ErrorCodeAttribute
	if err := ec.GetFrom(m); err != nil {
		return -1
	}
	return int(ec.Code)
}

// authed sends an authenticated request, first learning realm and nonce from
// a 401 (or refreshing a stale nonce), and returns the response.
func (c *turnClient) authed(method stun.Method, setters ...stun.Setter) *stun.Message {
	c.t.Helper()
	typ := stun.NewType(method, stun.ClassRequest)
	for range 3 {
		if c.nonce == "" {
			resp := c.do(append([]stun.Setter{typ}, setters...)...)
			if errCode(resp) != 401 {
				return resp
			}
			c.learn(resp)
		}
		all := append([]stun.Setter{typ}, setters...)
		all = append(all, stun.NewUsername(c.user), stun.NewRealm(c.realm), stun.NewNonce(c.nonce),
			stun.NewLongTermIntegrity(c.user, c.realm, c.pass))
		resp := c.do(all...)
		if code := errCode(resp); code == 438 || (code == 401 && c.realm == "") {
			c.learn(resp)
			continue
		}
		return resp
	}
	c.t.Fatal("authentication loop")
	return nil
}

func (c *turnClient) learn(resp *stun.Message) {
	var n stun.Nonce
	var r stun.Realm
	_ = n.GetFrom(resp)
	_ = r.GetFrom(resp)
	c.nonce, c.realm = n.String(), r.String()
}

// allocate makes an allocation and returns its relayed address, or the
// error code.
func (c *turnClient) allocate(proto, fam byte) (netip.AddrPort, int) {
	c.t.Helper()
	setters := []stun.Setter{transportAttr(proto)}
	if fam != 0 {
		setters = append(setters, familyAttr(fam))
	}
	resp := c.authed(stun.MethodAllocate, setters...)
	if code := errCode(resp); code != 0 {
		return netip.AddrPort{}, code
	}
	var ra stun.XORMappedAddress
	if err := ra.GetFromAs(resp, stun.AttrXORRelayedAddress); err != nil {
		c.t.Fatalf("allocate: no XOR-RELAYED-ADDRESS: %v", err)
	}
	a, _ := netip.AddrFromSlice(ra.IP)
	return netip.AddrPortFrom(a.Unmap(), uint16(ra.Port)), 0
}

func (c *turnClient) mustAllocate(proto, fam byte) netip.AddrPort {
	c.t.Helper()
	relay, code := c.allocate(proto, fam)
	if code != 0 {
		c.t.Fatalf("allocate: error %d", code)
	}
	return relay
}

func (c *turnClient) createPermission(peers ...netip.AddrPort) int {
	c.t.Helper()
	var setters []stun.Setter
	for _, p := range peers {
		setters = append(setters, peerAttr(p))
	}
	return errCode(c.authed(stun.MethodCreatePermission, setters...))
}

func (c *turnClient) channelBind(ch uint16, peer netip.AddrPort) int {
	c.t.Helper()
	return errCode(c.authed(stun.MethodChannelBind, channelAttr(ch), peerAttr(peer)))
}

// connect sends an RFC 6062 Connect and returns the error code and the
// CONNECTION-ID.
func (c *turnClient) connect(peer netip.AddrPort) (int, []byte) {
	c.t.Helper()
	resp := c.authed(stun.MethodConnect, peerAttr(peer))
	id, _ := resp.Get(stun.AttrConnectionID)
	return errCode(resp), id
}

func (c *turnClient) refresh(lifetime time.Duration) int {
	c.t.Helper()
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, uint32(lifetime/time.Second))
	return errCode(c.authed(stun.MethodRefresh, attr{stun.AttrLifetime, v}))
}

// sendChannel sends ChannelData (padded on streams).
func (c *turnClient) sendChannel(ch uint16, data []byte) {
	c.t.Helper()
	b := make([]byte, 4, 4+len(data)+3)
	binary.BigEndian.PutUint16(b[0:], ch)
	binary.BigEndian.PutUint16(b[2:], uint16(len(data)))
	b = append(b, data...)
	if c.stream {
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	c.write(b)
}

// readChannel returns the payload of the next ChannelData frame.
func (c *turnClient) readChannel(timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := c.readFrame(deadline)
		if err != nil {
			return nil, err
		}
		if isChannelData(b) {
			n := int(binary.BigEndian.Uint16(b[2:4]))
			if 4+n > len(b) {
				return nil, io.ErrUnexpectedEOF
			}
			return b[4 : 4+n], nil
		}
	}
}
