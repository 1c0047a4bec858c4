package transport

import (
	"io"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

const (
	// maxSend is the largest data channel message we send (§3.2: ≤16 KiB
	// for every browser).
	maxSend = 16 << 10
	// maxRecv is the largest message accepted: a browser may send up to
	// 256 KiB in one message.
	maxRecv = 256 << 10
	// highWater pauses writes while this much is buffered in SCTP;
	// lowWater resumes them.
	highWater = 1 << 20
	lowWater  = 256 << 10
)

// dcStream is a data channel as a byte stream (§3.2): message boundaries
// mean nothing, writes go out as binary messages of at most maxSend bytes.
// Close closes the whole PeerConnection.
type dcStream struct {
	dc     *webrtc.DataChannel
	rwc    datachannel.ReadWriteCloser
	closer func()

	buf     []byte // read buffer
	pending []byte // unread part of the last message

	low       chan struct{} // a token when the buffered amount fell low
	done      chan struct{}
	closeOnce sync.Once
}

func newDCStream(dc *webrtc.DataChannel, rwc datachannel.ReadWriteCloser, closer func()) *dcStream {
	s := &dcStream{dc: dc, rwc: rwc, closer: closer, low: make(chan struct{}, 1), done: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.low <- struct{}{}:
		default:
		}
	})
	return s
}

// Read returns bytes of the stream; a remote close is io.EOF. Only one
// goroutine may read.
func (s *dcStream) Read(p []byte) (int, error) {
	if len(s.pending) == 0 {
		if s.buf == nil {
			s.buf = make([]byte, maxRecv)
		}
		n, err := s.rwc.Read(s.buf)
		if err != nil {
			return 0, err
		}
		s.pending = s.buf[:n]
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// Write sends p as binary messages of at most maxSend bytes, waiting while
// too much is buffered. Only one goroutine may write.
func (s *dcStream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := s.wait(); err != nil {
			return n, err
		}
		c := p[:min(len(p), maxSend)]
		if _, err := s.rwc.Write(c); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}

// wait blocks while the channel's send buffer is above highWater. It polls
// as well as listening for the low event, which may fire between the
// check and the wait.
func (s *dcStream) wait() error {
	for s.dc.BufferedAmount() > highWater {
		select {
		case <-s.done:
			return io.ErrClosedPipe
		case <-s.low:
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case <-s.done:
		return io.ErrClosedPipe
	default:
		return nil
	}
}

// Close closes the channel and its PeerConnection. Idempotent.
func (s *dcStream) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.rwc.Close()
		s.closer()
	})
	return nil
}
