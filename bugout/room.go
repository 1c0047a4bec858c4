package bugout

import (
	"crypto/sha1"
	"errors"
	"fmt"

	"github.com/anacrolix/torrent/bencode"
)

// pieceLength is create-torrent's piece length for any identifier Bugout can
// use (§2).
const pieceLength = 16384

// MaxIdentifierBytes is the longest room identifier accepted: one torrent
// piece. A longer one would need create-torrent's multi-piece rule and would
// ride in every packet; it is refused with ErrIdentifierTooLong.
const MaxIdentifierBytes = pieceLength

// ErrIdentifierTooLong is returned for identifiers over MaxIdentifierBytes.
var ErrIdentifierTooLong = errors.New("bugout: room identifier longer than 16384 bytes")

// InfoHash is the BitTorrent infoHash of a Bugout room: the sha1 of the info
// dict of the one-file torrent whose name and content are the identifier's
// UTF-8 bytes (§2). private selects the torrentOpts {private:true} variant.
func InfoHash(identifier string, private bool) ([20]byte, error) {
	if len(identifier) > MaxIdentifierBytes {
		return [20]byte{}, fmt.Errorf("%w (%d bytes)", ErrIdentifierTooLong, len(identifier))
	}
	if identifier == "" {
		return [20]byte{}, errors.New("bugout: empty room identifier")
	}
	pieces := sha1.Sum([]byte(identifier))
	info := map[string]any{
		"length":       len(identifier),
		"name":         identifier,
		"piece length": pieceLength,
		"pieces":       pieces[:],
	}
	if private {
		info["private"] = 1
	}
	b, err := bencode.Marshal(info)
	if err != nil {
		return [20]byte{}, fmt.Errorf("bugout: encode info dict: %w", err)
	}
	return sha1.Sum(b), nil
}
