package signal_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"net"
	"testing"
)

func bufioReader(nc net.Conn) *bufio.Reader { return bufio.NewReaderSize(nc, 64) }

// maskedText frames m as one masked client text frame (RFC 6455 §5.2).
func maskedText(t *testing.T, m map[string]any) []byte {
	t.Helper()
	p, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	f := []byte{0x81}
	switch {
	case len(p) < 126:
		f = append(f, 0x80|byte(len(p)))
	case len(p) < 1<<16:
		f = append(f, 0x80|126, 0, 0)
		binary.BigEndian.PutUint16(f[2:], uint16(len(p)))
	default:
		f = append(f, 0x80|127, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint64(f[2:], uint64(len(p)))
	}
	key := [4]byte{1, 2, 3, 4}
	f = append(f, key[:]...)
	for i, b := range p {
		f = append(f, b^key[i%4])
	}
	return f
}
