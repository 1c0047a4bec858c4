//go:build !linux

package signal

import (
	"errors"
	"net"
)

// Without epoll every connection is a stream: a goroutine reads it and
// another writes it.
type loop struct{ dirty []*conn }

var (
	errInterrupted = errors.New("interrupted")
	errWouldBlock  = errors.New("would block")
)

func newLoop(*Server) (*loop, error)        { return nil, errNoLoop }
func (l *loop) attach(*conn, int) error     { return errNoLoop }
func (l *loop) watchWritable(*conn, bool)   {}
func (l *loop) stop()                       {}
func sendNoSignal(int, []byte) (int, error) { return 0, errNoLoop }
func shutdownSocket(int)                    {}
func closeFD(int)                           {}
func socketOf(net.Conn) (int, bool)         { return 0, false }
