package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxsignal/boxsignal/dht"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func (c *config) p2pListen() ([]string, error) {
	out := list(c.P2PListen)
	for _, s := range out {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address (set -federation=false to turn federation off)")
	}
	return out, nil
}

func (c *config) dhtBootstrap() ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range list(c.DHTBootstrap) {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want a multiaddr ending in /p2p/<peer ID>: %v", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

func (c *config) keyFile(getenv func(string) string) (string, error) {
	if c.P2PKeyFile != "" {
		return c.P2PKeyFile, nil
	}
	dir, err := c.dataDir(getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "p2p.key"), nil
}

func (c *config) friendsFile(getenv func(string) string) (string, error) {
	if c.FriendsFile != "" {
		return c.FriendsFile, nil
	}
	dir, err := c.dataDir(getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "friends"), nil
}

// loadP2PKey loads or creates the Box's federation identity, so that its
// peer ID is known (and printed) before any friend is added.
func (b *box) loadP2PKey(getenv func(string) string) error {
	var err error
	if b.keyPath, err = b.cfg.keyFile(getenv); err != nil {
		return err
	}
	if b.friendsPath, err = b.cfg.friendsFile(getenv); err != nil {
		return err
	}
	if b.p2pKey, err = dht.LoadOrCreateKey(b.keyPath); err != nil {
		return err
	}
	b.p2pID, err = dht.IDOf(b.p2pKey)
	return err
}

// startFederation starts the federation node when there is someone to
// federate with: a friend in the friends file, or a DHT bootstrap peer. A
// Box without either pays nothing for federation (no port is opened); a
// SIGHUP that adds the first friend starts it.
func (b *box) startFederation() error {
	c := b.cfg
	if !c.Federation || b.federation() != nil {
		return nil
	}
	friends, err := dht.LoadFriends(b.friendsPath)
	if err != nil {
		return err
	}
	boot, _ := c.dhtBootstrap()
	if len(friends) == 0 && len(boot) == 0 {
		return nil
	}
	listen, _ := c.p2pListen()
	policy, _ := dht.ParsePolicy(c.DHTPolicy)
	n, err := dht.New(dht.Config{
		Key:           b.p2pKey,
		Listen:        listen,
		PortMap:       c.P2PPortMap,
		Friends:       friends,
		Policy:        policy,
		DHT:           c.DHT,
		Bootstrap:     boot,
		FriendRate:    c.FriendRate,
		FriendBurst:   int(2 * c.FriendRate),
		StrangerRate:  c.StrangerRate,
		StrangerBurst: int(2 * c.StrangerRate),
		BoxRate:       c.FederationRate,
		BoxBurst:      int(2 * c.FederationRate),
		Logger:        b.log,
		Registerer:    b.reg,
	}, b.tracker)
	if err != nil {
		return err
	}
	b.fed.Store(n)
	b.tracker.SetFederation(n)
	b.log.Info("federation up", "id", n.ID().String(), "friends", len(friends), "dht", c.DHT, "policy", policy.String(), "listen", n.Host().Addrs())
	return nil
}

// reloadFriends applies the friends file after a SIGHUP.
func (b *box) reloadFriends() {
	if !b.cfg.Federation {
		return
	}
	n := b.federation()
	if n == nil {
		if err := b.startFederation(); err != nil {
			b.log.Warn("reload: federation not started", "err", err)
		}
		return
	}
	friends, err := dht.LoadFriends(b.friendsPath)
	if err != nil {
		b.log.Warn("reload: keeping the old friends", "err", err)
		return
	}
	n.SetFriends(friends)
	b.log.Info("reloaded friends", "friends", len(friends), "file", b.friendsPath)
}

func (b *box) stopFederation() {
	if n := b.fed.Swap(nil); n != nil {
		b.tracker.SetFederation(nil)
		n.Close()
	}
}

// federation is the running federation node, or nil.
func (b *box) federation() *dht.Node { return b.fed.Load() }

const usageFederation = `  signald id [options]            print this Box's federation identity, as a
                                  line for a friend's "signald friend add"
  signald friend add <peer ID> <name> [<multiaddr>...] [rate=<offers/s>]
  signald friend list             the friends file
  signald friend remove <peer ID or name>
                                  (then: systemctl reload signald, or kill -HUP)
`

// idCommand prints the Box's peer ID, creating its key if needed.
func idCommand(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	cfg, _, err := loadConfig(args, getenv, environ)
	if err != nil {
		fmt.Fprintf(stderr, "signald id: %v\n", err)
		return 2
	}
	path, err := cfg.keyFile(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "signald id: %v\n", err)
		return 1
	}
	k, err := dht.LoadOrCreateKey(path)
	if err != nil {
		fmt.Fprintf(stderr, "signald id: %v\n", err)
		return 1
	}
	id, err := dht.IDOf(k)
	if err != nil {
		fmt.Fprintf(stderr, "signald id: %v\n", err)
		return 1
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "box"
	}
	fmt.Fprintln(stdout, id)
	fmt.Fprintf(stderr, "Key: %s\nFor a friend's Box (replace the addresses with the ones that reach this Box):\n  signald friend add %s %s /dns4/<this box's name>/tcp/4001 /dns4/<this box's name>/udp/4001/quic-v1\n", path, id, sanitizeName(host))
	return 0
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.TrimLeft(b.String(), "-._")
}

// friendCommand edits or lists the friends file.
func friendCommand(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	fail := func(rc int, format string, a ...any) int {
		fmt.Fprintf(stderr, "signald friend: "+format+"\n", a...)
		return rc
	}
	if len(args) == 0 {
		return fail(2, "want add, list or remove\n%s", usageFederation)
	}
	verb, rest := args[0], args[1:]
	// Options (-config, -data-dir, -friends-file) come before the verb's
	// own arguments or after them; split at the first non-flag.
	var opts, pos []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if strings.HasPrefix(a, "-") {
			opts = append(opts, a)
			if !strings.Contains(a, "=") && i+1 < len(rest) && !strings.HasPrefix(rest[i+1], "-") {
				i++
				opts = append(opts, rest[i])
			}
			continue
		}
		pos = append(pos, a)
	}
	cfg, _, err := loadConfig(opts, getenv, environ)
	if err != nil {
		return fail(2, "%v", err)
	}
	path, err := cfg.friendsFile(getenv)
	if err != nil {
		return fail(1, "%v", err)
	}
	switch verb {
	case "list":
		fs, err := dht.LoadFriends(path)
		if err != nil {
			return fail(1, "%v", err)
		}
		if len(fs) == 0 {
			fmt.Fprintf(stderr, "no friends in %s\n", path)
		}
		for _, f := range fs {
			fmt.Fprintln(stdout, f)
		}
		return 0
	case "add":
		if len(pos) < 2 {
			return fail(2, "add: want <peer ID> <name> [<multiaddr>...] [rate=N] [burst=N]")
		}
		line := []string{pos[0], pos[1]}
		var addrs []string
		for _, a := range pos[2:] {
			if strings.HasPrefix(a, "/") {
				addrs = append(addrs, a)
			} else {
				line = append(line, a)
			}
		}
		if len(addrs) > 0 {
			line = append(line, "addrs="+strings.Join(addrs, ","))
		}
		fs, err := dht.ParseFriends(strings.NewReader(strings.Join(line, " ")))
		if err != nil {
			return fail(2, "%v", strings.TrimPrefix(err.Error(), "line 1: "))
		}
		if err := dht.AddFriend(path, fs[0]); err != nil {
			return fail(1, "%v", err)
		}
		fmt.Fprintf(stdout, "added %s to %s; they must add this Box too (signald id). Reload a running signald: systemctl reload signald (or kill -HUP <pid>)\n", fs[0].Name, path)
		return 0
	case "remove":
		if len(pos) != 1 {
			return fail(2, "remove: want <peer ID or name>")
		}
		ok, err := dht.RemoveFriend(path, pos[0])
		if err != nil {
			return fail(1, "%v", err)
		}
		if !ok {
			return fail(1, "no friend %q in %s", pos[0], path)
		}
		fmt.Fprintf(stdout, "removed %s from %s. Reload a running signald: systemctl reload signald (or kill -HUP <pid>)\n", pos[0], path)
		return 0
	}
	return fail(2, "unknown verb %q: want add, list or remove", verb)
}
