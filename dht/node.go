package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxsignal/boxsignal/signal"
	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/libp2p/go-libp2p"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Protocol IDs of a Box.
const (
	RelayProtocol protocol.ID = "/boxsignal/relay/1.0.0"
	dhtPrefix     protocol.ID = "/boxsignal" // the DHT speaks /boxsignal/kad/1.0.0
)

// Policy says which Boxes that are not friends this Box deals with.
type Policy int

const (
	// FriendsOnly refuses every Box that is not a friend, at the
	// connection gater and in every handler; the DHT runs among friends.
	FriendsOnly Policy = iota
	// Open lets Boxes found in the DHT relay offers to this Box and take
	// offers from it, under StrangerRate; they never learn its rooms.
	Open
)

// ParsePolicy parses "friends" or "open".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "friends", "":
		return FriendsOnly, nil
	case "open":
		return Open, nil
	}
	return 0, fmt.Errorf("policy %q: want friends or open", s)
}

func (p Policy) String() string {
	if p == Open {
		return "open"
	}
	return "friends"
}

// Tracker is the local tracker a Node relays for; *signal.Server is one.
type Tracker interface {
	RemoteOffers(infoHash, from *wire.Hash, offers []wire.Offer, back signal.Member) int
	RemoteAnswer(infoHash, from, to, offerID *wire.Hash, sdp []byte) bool
	LocalPeers(infoHash *wire.Hash) (complete, incomplete int)
}

// Config configures a Node. Zero durations and rates mean the defaults shown.
type Config struct {
	// Key is the Box's identity (LoadOrCreateKey) and Listen its libp2p
	// listen addresses; both are ignored when Host is set.
	Key    crypto.PrivKey
	Listen []string
	// PortMap asks the home router to forward the listen ports (UPnP and
	// NAT-PMP; it multicasts on the LAN to find the router).
	PortMap bool
	// Host, if set, is used instead of a host of the Node's own (tests use
	// libp2p's mocknet). Such a host has no connection gater: only the
	// handlers check who is a friend. Close does not close it.
	Host host.Host

	Friends []Friend
	Policy  Policy
	// DHT runs the Kademlia DHT of Boxes (server mode, own protocol
	// prefix); Bootstrap are extra DHT peers besides friends.
	DHT       bool
	Bootstrap []peer.AddrInfo

	// FriendRate and FriendBurst bound the offers per second a friend may
	// relay here (default 20, burst 40), unless its friends-file line says
	// otherwise; StrangerRate/StrangerBurst bound a non-friend in the Open
	// policy (default 5, 10); BoxRate/BoxBurst bound all Boxes together
	// (default 100, 200); RoomRate/RoomBurst one Box in one room (5, 10).
	FriendRate, StrangerRate, BoxRate, RoomRate     float64
	FriendBurst, StrangerBurst, BoxBurst, RoomBurst int

	// PendingTTL is how long an answer to a relayed offer is accepted
	// (default 60 s, just above the browser's 50 s offer timeout);
	// MaxPending bounds the relayed offers awaiting an answer (4096).
	PendingTTL time.Duration
	MaxPending int
	// InterestTTL is how long a Box's room interest lasts unless renewed
	// (default 150 s); it is renewed every InterestTTL/2.5.
	InterestTTL time.Duration
	// ProvideValidity is the lifetime of the DHT provider records this Box
	// stores for others (default 10 min; every Box should agree); rooms
	// with local peers are provided again every ProvideValidity*2/5.
	ProvideValidity time.Duration
	// LookupTimeout bounds a DHT room lookup and DialTimeout opening a
	// stream to a Box (defaults 5 s and 3 s); NegativeTTL is how long a Box
	// that failed or had no peers is skipped (60 s).
	LookupTimeout, DialTimeout, NegativeTTL time.Duration
	// Tick is the period of housekeeping (default 2 s).
	Tick time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) defaults() {
	d := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	f := func(p *float64, v float64) {
		if *p <= 0 {
			*p = v
		}
	}
	i := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	f(&c.FriendRate, 20)
	i(&c.FriendBurst, 40)
	f(&c.StrangerRate, 5)
	i(&c.StrangerBurst, 10)
	f(&c.BoxRate, 100)
	i(&c.BoxBurst, 200)
	f(&c.RoomRate, 5)
	i(&c.RoomBurst, 10)
	d(&c.PendingTTL, 60*time.Second)
	i(&c.MaxPending, 4096)
	d(&c.InterestTTL, 150*time.Second)
	d(&c.ProvideValidity, 10*time.Minute)
	d(&c.LookupTimeout, 5*time.Second)
	d(&c.DialTimeout, 3*time.Second)
	d(&c.NegativeTTL, 60*time.Second)
	d(&c.Tick, 2*time.Second)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// A Node is one Box's side of the federation. Its methods are safe for
// concurrent use.
type Node struct {
	cfg     Config
	h       host.Host
	ownHost bool
	kad     *kad.IpfsDHT
	tr      Tracker
	log     *slog.Logger
	m       *metrics

	friends atomic.Pointer[map[peer.ID]*Friend]
	lim     *limits

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // wakes the dialer

	mu      sync.Mutex
	closed  bool
	links   map[peer.ID]*link
	rooms   map[wire.Hash]*room
	byKey   map[RoomKey]*room
	remote  map[RoomKey]map[peer.ID]*interest
	pending map[pendKey]pend
	neg     map[negKey]time.Time
	provide chan RoomKey
}

// New starts a Node for tr: its host (unless cfg.Host is set), the relay
// protocol, the friend dialer and, if cfg.DHT, the DHT. Close stops them.
func New(cfg Config, tr Tracker) (*Node, error) {
	cfg.defaults()
	n := &Node{
		cfg:     cfg,
		tr:      tr,
		log:     cfg.Logger.With("component", "federation"),
		kick:    make(chan struct{}, 1),
		links:   make(map[peer.ID]*link),
		rooms:   make(map[wire.Hash]*room),
		byKey:   make(map[RoomKey]*room),
		remote:  make(map[RoomKey]map[peer.ID]*interest),
		pending: make(map[pendKey]pend),
		neg:     make(map[negKey]time.Time),
		provide: make(chan RoomKey, 1024),
	}
	n.lim = newLimits(&n.cfg)
	n.m = newMetrics()
	n.setFriends(cfg.Friends)
	n.ctx, n.cancel = context.WithCancel(context.Background())

	if cfg.Host != nil {
		n.h = cfg.Host
	} else {
		if cfg.Key == nil {
			return nil, errors.New("dht: Config.Key is required")
		}
		rm, err := resourceManager()
		if err != nil {
			return nil, err
		}
		opts := []libp2p.Option{
			libp2p.Identity(cfg.Key),
			libp2p.ResourceManager(rm),
			libp2p.ListenAddrStrings(cfg.Listen...),
			libp2p.ConnectionGater((*gater)(n)),
			libp2p.EnableHolePunching(),
			libp2p.UserAgent("boxsignal"),
		}
		if cfg.PortMap {
			opts = append(opts, libp2p.NATPortMap())
		}
		h, err := libp2p.New(opts...)
		if err != nil {
			rm.Close()
			return nil, fmt.Errorf("dht: libp2p host: %w", err)
		}
		n.h, n.ownHost = h, true
	}

	if cfg.DHT {
		opts := []kad.Option{
			kad.ProtocolPrefix(dhtPrefix),
			kad.Mode(kad.ModeServer),
			kad.ProviderManagerOpts(records.ProvideValidity(cfg.ProvideValidity)),
			kad.BootstrapPeersFunc(n.bootstrapPeers),
			kad.DisableValues(),
		}
		if cfg.Policy == FriendsOnly {
			opts = append(opts,
				kad.RoutingTableFilter(func(_ any, p peer.ID) bool { return n.isFriend(p) }),
				kad.QueryFilter(func(_ any, ai peer.AddrInfo) bool { return n.isFriend(ai.ID) }))
		}
		k, err := kad.New(n.h, opts...)
		if err != nil {
			n.cancel()
			n.closeHost()
			return nil, fmt.Errorf("dht: kademlia: %w", err)
		}
		n.kad = k
	}

	n.m.register(cfg.Registerer, n)
	n.h.SetStreamHandler(RelayProtocol, n.handleStream)
	n.h.Network().Notify((*notifiee)(n))
	n.wg.Add(2)
	go n.dialer()
	go n.housekeeping()
	if n.kad != nil {
		n.wg.Add(1)
		go n.provider()
	}
	return n, nil
}

// resourceManager is libp2p's default, scaled to the machine, plus limits
// on the relay protocol: a Box needs one stream each way per Box, so a few
// per peer are plenty, however a peer misbehaves.
func resourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.AddProtocolLimit(RelayProtocol,
		rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 512, Memory: 32 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(RelayProtocol,
		rcmgr.BaseLimit{StreamsInbound: 4, StreamsOutbound: 4, Streams: 8, Memory: 2 * MaxMessageBytes},
		rcmgr.BaseLimitIncrease{})
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
}

func (n *Node) bootstrapPeers() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, f := range *n.friends.Load() {
		if len(f.Addrs) > 0 {
			out = append(out, peer.AddrInfo{ID: f.ID, Addrs: f.Addrs})
		}
	}
	return append(out, n.cfg.Bootstrap...)
}

// ID is the Box's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// Addrs are the Box's listen addresses, each with /p2p/<ID>, for a friend's
// friends file.
func (n *Node) Addrs() []ma.Multiaddr {
	ai := peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()}
	out, _ := peer.AddrInfoToP2pAddrs(&ai)
	return out
}

// RoutingTableSize is the number of Boxes in the DHT routing table (0
// without the DHT).
func (n *Node) RoutingTableSize() int {
	if n.kad == nil {
		return 0
	}
	return n.kad.RoutingTable().Size()
}

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.h }

// SetFriends replaces the friend list (on SIGHUP). Connections to Boxes that
// are no longer friends are closed unless the policy is Open.
func (n *Node) SetFriends(fs []Friend) {
	n.setFriends(fs)
	if n.cfg.Policy == FriendsOnly {
		for _, p := range n.h.Network().Peers() {
			if !n.isFriend(p) {
				n.h.Network().ClosePeer(p)
			}
		}
	}
	n.lim.reset()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Node) setFriends(fs []Friend) {
	m := make(map[peer.ID]*Friend, len(fs))
	for i := range fs {
		f := fs[i]
		m[f.ID] = &f
	}
	n.friends.Store(&m)
}

func (n *Node) friend(p peer.ID) *Friend { return (*n.friends.Load())[p] }

func (n *Node) isFriend(p peer.ID) bool { return n.friend(p) != nil }

// allowed reports whether this Box deals with p at all.
func (n *Node) allowed(p peer.ID) bool {
	return n.isFriend(p) || (n.cfg.Policy == Open && p != n.h.ID())
}

// label names p in logs and metrics: its friend name, or "stranger".
func (n *Node) label(p peer.ID) string {
	if f := n.friend(p); f != nil {
		return f.Name
	}
	return "stranger"
}

// FriendStatus is a friend and whether it is connected now.
type FriendStatus struct {
	Friend
	Connected bool
}

// Friends lists the friends and their connection state.
func (n *Node) Friends() []FriendStatus {
	var out []FriendStatus
	for _, f := range *n.friends.Load() {
		out = append(out, FriendStatus{*f, n.h.Network().Connectedness(f.ID) == network.Connected})
	}
	return out
}

// Close stops the node and, unless it was given one, its host.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	links := n.links
	n.links = map[peer.ID]*link{}
	n.mu.Unlock()

	n.h.RemoveStreamHandler(RelayProtocol)
	n.h.Network().StopNotify((*notifiee)(n))
	n.cancel()
	for _, l := range links {
		l.stop()
	}
	var err error
	if n.kad != nil {
		err = n.kad.Close()
	}
	n.wg.Wait()
	if e := n.closeHost(); err == nil {
		err = e
	}
	return err
}

func (n *Node) closeHost() error {
	if n.ownHost {
		return n.h.Close()
	}
	return nil
}

// gater refuses connections from and to Boxes the policy excludes.
type gater Node

func (g *gater) InterceptPeerDial(p peer.ID) bool                                { return (*Node)(g).allowed(p) }
func (g *gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool                    { return true }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool                     { return true }
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	n := (*Node)(g)
	if !n.allowed(p) {
		n.m.refused.Inc()
		n.log.Debug("refused a Box that is not a friend", "peer", p)
		return false
	}
	return true
}
