package bugout

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/mr-tron/base58"
	"golang.org/x/crypto/ripemd160" //lint:ignore SA1019 Bugout addresses are defined with RIPEMD-160 (§1)
)

// Prefixes of Bugout's bs58check strings (§1).
const (
	seedPrefix0, seedPrefix1 = 0x49, 0x0a // seed strings start "Bo"
	addressPrefix            = 0x55       // addresses start "b"
)

// Address is a Bugout address: bs58check(0x55 ‖ ripemd160(sha512(pub))),
// always 34 characters.
type Address string

// ErrBadSeed is returned for a seed string or seed bytes that cannot be an
// identity.
var ErrBadSeed = errors.New("bugout: bad seed")

// Identity is a long-lived Bugout identity: an Ed25519 key pair made from a
// 32-byte seed. Its String, Format and LogValue show only the address, so an
// Identity can be printed or logged without leaking the key.
type Identity struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	pk   string
	addr Address
}

// NewIdentity makes an identity from 32 bytes of r (crypto/rand if r is nil).
func NewIdentity(r io.Reader) (*Identity, error) {
	if r == nil {
		r = rand.Reader
	}
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("bugout: new identity: %w", err)
	}
	return IdentityFromSeed(seed[:])
}

// IdentityFromSeed makes the identity of a raw 32-byte seed.
func IdentityFromSeed(seed []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadSeed, len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &Identity{priv: priv, pub: pub, pk: base58.Encode(pub), addr: AddressOf(pub)}, nil
}

// ParseSeed decodes a Bugout seed string (bs58check(0x49 0x0a ‖ seed32)).
// Like Bugout it checks the checksum and the length but not the two prefix
// bytes.
func ParseSeed(s string) (*Identity, error) {
	raw, err := bs58checkDecode(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSeed, err)
	}
	if len(raw) != 2+ed25519.SeedSize {
		return nil, fmt.Errorf("%w: %d bytes after the prefix, want %d", ErrBadSeed, len(raw)-2, ed25519.SeedSize)
	}
	return IdentityFromSeed(raw[2:])
}

// Seed returns the seed string that ParseSeed reads back. It is the secret
// key: whoever has it is this address.
func (id *Identity) Seed() string {
	payload := append([]byte{seedPrefix0, seedPrefix1}, id.priv.Seed()...)
	return bs58checkEncode(payload)
}

// Address is the identity's Bugout address.
func (id *Identity) Address() Address { return id.addr }

// PublicKey is the base58 Ed25519 public key (Bugout's pk, 43 or 44 chars).
func (id *Identity) PublicKey() string { return id.pk }

// String shows the address only.
func (id *Identity) String() string { return "bugout.Identity(" + string(id.addr) + ")" }

// Format prints the address only, for every verb, so %v, %+v and %#v of a
// struct holding an Identity never show the key.
func (id *Identity) Format(f fmt.State, _ rune) { io.WriteString(f, id.String()) }

// LogValue logs the address only.
func (id *Identity) LogValue() slog.Value { return slog.StringValue(string(id.addr)) }

func (id *Identity) sign(msg []byte) []byte { return ed25519.Sign(id.priv, msg) }

// AddressOf is the Bugout address of an Ed25519 public key.
func AddressOf(pub ed25519.PublicKey) Address {
	h := sha512.Sum512(pub)
	r := ripemd160.New()
	r.Write(h[:])
	return Address(bs58checkEncode(r.Sum([]byte{addressPrefix})))
}

// parsePublicKey decodes a base58 pk that must be 32 bytes.
func parsePublicKey(pk []byte) (ed25519.PublicKey, error) {
	raw, err := base58.Decode(string(pk))
	if err != nil {
		return nil, fmt.Errorf("pk not base58: %v", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("pk is %d bytes, want %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
