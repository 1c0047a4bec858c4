package dht

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A Friend is a Box this Box federates with. Friendship is mutual: each Box
// lists the other in its friends file.
type Friend struct {
	ID    peer.ID
	Name  string         // unique in the file; used in logs and metrics
	Addrs []ma.Multiaddr // where to dial it; empty means wait for it to dial, or find it in the DHT
	// Rate and Burst bound the offers per second it may relay to this Box;
	// zero means the node's default for friends.
	Rate  float64
	Burst int
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseFriends reads a friends file: one friend per line, in the style of
// ssh's authorized_keys,
//
//	# comment
//	12D3KooW...  bob-pi  addrs=/ip4/198.51.100.7/tcp/4001,/ip4/198.51.100.7/udp/4001/quic-v1  rate=20  burst=40
//
// Errors name the line.
func ParseFriends(r io.Reader) ([]Friend, error) {
	var out []Friend
	ids := map[peer.ID]int{}
	names := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f, err := parseFriend(strings.Fields(line))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if prev, ok := ids[f.ID]; ok {
			return nil, fmt.Errorf("line %d: peer ID %s already on line %d", n, f.ID, prev)
		}
		if prev, ok := names[f.Name]; ok {
			return nil, fmt.Errorf("line %d: name %q already on line %d", n, f.Name, prev)
		}
		ids[f.ID], names[f.Name] = n, n
		out = append(out, f)
	}
	return out, sc.Err()
}

func parseFriend(fields []string) (Friend, error) {
	var f Friend
	if len(fields) < 2 {
		return f, errors.New("want a peer ID and a name")
	}
	id, err := peer.Decode(fields[0])
	if err != nil {
		return f, fmt.Errorf("peer ID %q: %v", fields[0], err)
	}
	if _, err := id.ExtractPublicKey(); err != nil {
		return f, fmt.Errorf("peer ID %q does not embed its key (want an Ed25519 12D3KooW... ID)", fields[0])
	}
	f.ID = id
	if !nameRE.MatchString(fields[1]) {
		return f, fmt.Errorf("name %q: use letters, digits, '.', '_' or '-' (at most 64)", fields[1])
	}
	f.Name = fields[1]
	for _, opt := range fields[2:] {
		k, v, ok := strings.Cut(opt, "=")
		if !ok {
			return f, fmt.Errorf("%q: want key=value", opt)
		}
		switch k {
		case "addrs":
			for _, s := range strings.Split(v, ",") {
				a, err := ma.NewMultiaddr(s)
				if err != nil {
					return f, fmt.Errorf("address %q: %v", s, err)
				}
				f.Addrs = append(f.Addrs, a)
			}
		case "rate":
			r, err := strconv.ParseFloat(strings.TrimSuffix(v, "/s"), 64)
			if err != nil || r <= 0 || r > 1e6 {
				return f, fmt.Errorf("rate %q: want offers per second, e.g. rate=20", v)
			}
			f.Rate = r
		case "burst":
			b, err := strconv.Atoi(v)
			if err != nil || b <= 0 || b > 1e6 {
				return f, fmt.Errorf("burst %q: want a positive count", v)
			}
			f.Burst = b
		default:
			return f, fmt.Errorf("unknown option %q (want addrs, rate or burst)", k)
		}
	}
	return f, nil
}

// String formats f as a friends-file line.
func (f Friend) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", f.ID, f.Name)
	if len(f.Addrs) > 0 {
		s := make([]string, len(f.Addrs))
		for i, a := range f.Addrs {
			s[i] = a.String()
		}
		fmt.Fprintf(&b, " addrs=%s", strings.Join(s, ","))
	}
	if f.Rate > 0 {
		fmt.Fprintf(&b, " rate=%s", strconv.FormatFloat(f.Rate, 'g', -1, 64))
	}
	if f.Burst > 0 {
		fmt.Fprintf(&b, " burst=%d", f.Burst)
	}
	return b.String()
}

// LoadFriends reads the friends file at path; a missing file is no friends.
func LoadFriends(path string) ([]Friend, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fs, err := ParseFriends(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fs, nil
}

// AddFriend appends f to the friends file at path, creating it; an entry
// with the same peer ID or name is an error.
func AddFriend(path string, f Friend) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(b) == 0 {
		b = []byte(friendsHeader)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	b = append(b, f.String()+"\n"...)
	if _, err := ParseFriends(bytes.NewReader(b)); err != nil {
		return err
	}
	return writeAtomic(path, b)
}

// RemoveFriend deletes the line of the friend named by peer ID or name, and
// reports whether there was one. Comments and other lines stay as they are.
func RemoveFriend(path, who string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var out []string
	removed := false
	for _, line := range strings.SplitAfter(string(b), "\n") {
		fields := strings.Fields(strings.SplitN(line, "#", 2)[0])
		if len(fields) >= 2 && (fields[0] == who || fields[1] == who) {
			removed = true
			continue
		}
		out = append(out, line)
	}
	if !removed {
		return false, nil
	}
	return true, writeAtomic(path, []byte(strings.Join(out, "")))
}

const friendsHeader = `# Friends of this Box: other Boxes it relays browser offers to and from.
# Friendship is mutual: each Box lists the other. One friend per line:
#   <peer ID> <name> [addrs=<multiaddr>,...] [rate=<offers/s>] [burst=<n>]
# Reloaded on SIGHUP. Add lines with: signald friend add <peer ID> <name> [addrs...]
`

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".friends-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
