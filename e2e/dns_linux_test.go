package e2e

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
)

// dnsSink is the lab's dead-end name server: it answers nothing, but
// remembers the names asked, so that a stray lookup is reported by name.
type dnsSink struct {
	conn net.PacketConn
	done chan struct{}

	mu    sync.Mutex
	names []string
}

// startDNSSink listens on deadResolver:53 inside the lab's Internet
// namespace until t's cleanup.
func startDNSSink(t *testing.T, l *lab) *dnsSink {
	t.Helper()
	var conn net.PacketConn
	err := l.inet.do(func() error {
		var err error
		conn, err = net.ListenPacket("udp4", net.JoinHostPort(deadResolver, "53"))
		return err
	})
	if err != nil {
		t.Fatalf("dns sink: %v", err)
	}
	s := &dnsSink{conn: conn, done: make(chan struct{})}
	go s.serve()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

func (s *dnsSink) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		name := queryName(buf[:n])
		s.mu.Lock()
		if len(s.names) < 100 {
			s.names = append(s.names, name+" from "+from.String())
		}
		s.mu.Unlock()
	}
}

// asked is the names looked up so far, with who asked.
func (s *dnsSink) asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.names...)
}

// queryName decodes the first question's name of a DNS query, or "?".
func queryName(msg []byte) string {
	if len(msg) < 12 {
		return "?"
	}
	var labels []string
	for i := 12; i < len(msg); {
		n := int(msg[i])
		if n == 0 {
			return strings.Join(labels, ".")
		}
		if n > 63 || i+1+n > len(msg) {
			break
		}
		labels = append(labels, string(msg[i+1:i+1+n]))
		i += 1 + n
	}
	return "?"
}
