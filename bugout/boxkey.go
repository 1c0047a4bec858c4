package bugout

import (
	"fmt"
	"io"

	"github.com/mr-tron/base58"
	"golang.org/x/crypto/curve25519"
)

// boxKey is the ephemeral Curve25519 key pair Bugout makes per instance (ek,
// §1). Like tweetnacl it keeps the unclamped secret; X25519 clamps.
type boxKey struct {
	secret secret32
	public [32]byte
	ek     string // base58(public)
}

// secret32 is key material that prints as a placeholder.
type secret32 [32]byte

func (secret32) Format(f fmt.State, _ rune) { io.WriteString(f, "[secret]") }

func newBoxKey(r io.Reader) (*boxKey, error) {
	var sk secret32
	if _, err := io.ReadFull(r, sk[:]); err != nil {
		return nil, fmt.Errorf("bugout: box key: %w", err)
	}
	return boxKeyFromSecret(sk)
}

func boxKeyFromSecret(sk secret32) (*boxKey, error) {
	pub, err := curve25519.X25519(sk[:], curve25519.Basepoint)
	if err != nil {
		return nil, fmt.Errorf("bugout: box key: %w", err)
	}
	k := &boxKey{secret: sk, public: [32]byte(pub)}
	k.ek = base58.Encode(pub)
	return k, nil
}

// parseBoxKey decodes a base58 ek that must be 32 bytes.
func parseBoxKey(ek []byte) (*[32]byte, error) {
	raw, err := base58.Decode(string(ek))
	if err != nil {
		return nil, fmt.Errorf("ek not base58: %v", err)
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("ek is %d bytes, want 32", len(raw))
	}
	k := [32]byte(raw)
	return &k, nil
}
