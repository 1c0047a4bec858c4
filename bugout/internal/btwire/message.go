package btwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Message ids a Bugout peer meets (BEP 3, BEP 6, BEP 10).
const (
	Choke         byte = 0
	Unchoke       byte = 1
	Interested    byte = 2
	NotInterested byte = 3
	Have          byte = 4
	Bitfield      byte = 5
	Request       byte = 6
	Piece         byte = 7
	Cancel        byte = 8
	Port          byte = 9
	HaveAll       byte = 0x0e
	HaveNone      byte = 0x0f
	Extended      byte = 20
)

// ExtHandshakeID is the extended message id of the BEP 10 handshake.
const ExtHandshakeID byte = 0

// Message is one peer-wire message. A keep-alive has KeepAlive set and no
// id. For Extended messages, ExtID is payload byte 0 and Payload the rest.
type Message struct {
	KeepAlive bool
	ID        byte
	ExtID     byte
	Payload   []byte
}

// TooLargeError reports a message longer than the reader's limit. Its body
// has been read and discarded, so the stream is still in sync and reading
// may go on.
type TooLargeError struct {
	Len, Max int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("btwire: message of %d bytes over the %d-byte limit", e.Len, e.Max)
}

// ErrEmptyExtended is returned for an extended message without an ext id.
var ErrEmptyExtended = errors.New("btwire: extended message without an extension id")

// Reader reads messages from a byte stream, reassembling them whatever the
// stream's chunking.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader reads from r; messages over max bytes (id included) are
// discarded with a *TooLargeError.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 32<<10), max: max}
}

// ReadHandshake reads the handshake that opens the stream.
func (r *Reader) ReadHandshake() (Handshake, error) { return ReadHandshake(r.r) }

// ReadMessage reads the next message. The payload is a fresh slice.
func (r *Reader) ReadMessage() (Message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		return Message{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return Message{KeepAlive: true}, nil
	}
	if uint64(n) > uint64(r.max) {
		if _, err := io.CopyN(io.Discard, r.r, int64(n)); err != nil {
			return Message{}, noEOF(err)
		}
		return Message{}, &TooLargeError{Len: int(n), Max: r.max}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.r, buf); err != nil {
		return Message{}, noEOF(err)
	}
	m := Message{ID: buf[0], Payload: buf[1:]}
	if m.ID == Extended {
		if len(m.Payload) == 0 {
			return Message{}, ErrEmptyExtended
		}
		m.ExtID, m.Payload = m.Payload[0], m.Payload[1:]
	}
	return m, nil
}

// noEOF turns an EOF inside a message into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendMessage appends a framed message with id and payload to dst.
func AppendMessage(dst []byte, id byte, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+len(payload)))
	dst = append(dst, id)
	return append(dst, payload...)
}

// AppendExtended appends an extended message for the receiver's extID.
func AppendExtended(dst []byte, extID byte, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(2+len(payload)))
	dst = append(dst, Extended, extID)
	return append(dst, payload...)
}

// KeepAlive is the four zero bytes of a keep-alive.
func KeepAlive() []byte { return []byte{0, 0, 0, 0} }
