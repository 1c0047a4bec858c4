package dht

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/boxsignal/boxsignal/signal/wire"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// RoomKey names a room (an info_hash) between Boxes and in the DHT without
// revealing it: SHA-256 over a domain tag and the 20 raw bytes.
type RoomKey [32]byte

const roomTag = "boxsignal/room/v1"

// KeyOf returns the room key of infoHash.
func KeyOf(infoHash *wire.Hash) RoomKey {
	h := sha256.New()
	h.Write([]byte(roomTag))
	h.Write(infoHash[:])
	var k RoomKey
	h.Sum(k[:0])
	return k
}

// cid is the DHT key a Box provides for a room it has peers in.
func (k RoomKey) cid() cid.Cid {
	m, err := mh.Encode(k[:], mh.SHA2_256)
	if err != nil {
		panic(err) // a 32-byte digest always encodes
	}
	return cid.NewCidV1(cid.Raw, m)
}

// LoadOrCreateKey reads the Box's libp2p identity key from path, creating an
// Ed25519 key (mode 0600) if the file does not exist. A key file that others
// can read is refused, as ssh does.
func LoadOrCreateKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: key file is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not a libp2p private key: %w", path, err)
	}
	return k, nil
}

func createKey(path string) (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// Write a temporary file, then link it into place: a daemon starting
	// at the same time sees either no key or a whole one, never half.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKey(path)
	} else if err != nil {
		return nil, err
	}
	return k, nil
}

// IDOf returns the peer ID of a Box key.
func IDOf(k crypto.PrivKey) (peer.ID, error) { return peer.IDFromPrivateKey(k) }
