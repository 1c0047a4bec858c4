package signal

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lesismal/nbio/logging"
)

// nbio logs through a package-level logger. Route it once into slog: its
// lifecycle lines at Debug, its errors (a recovered handler panic among
// them) at Error.
var nbioLogOnce sync.Once

func routeNBIOLogs(l *slog.Logger) {
	nbioLogOnce.Do(func() { logging.SetLogger(nbioLogger{l.With("component", "nbio")}) })
}

type nbioLogger struct{ l *slog.Logger }

func (n nbioLogger) SetLevel(int) {}

func (n nbioLogger) log(level slog.Level, format string, v ...any) {
	if n.l.Enabled(context.Background(), level) {
		n.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (n nbioLogger) Debug(format string, v ...any) { n.log(slog.LevelDebug, format, v...) }
func (n nbioLogger) Info(format string, v ...any)  { n.log(slog.LevelDebug, format, v...) }
func (n nbioLogger) Warn(format string, v ...any)  { n.log(slog.LevelWarn, format, v...) }
func (n nbioLogger) Error(format string, v ...any) { n.log(slog.LevelError, format, v...) }
