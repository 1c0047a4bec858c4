package stunturn

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs routes pion's logs to slog. pion logs per packet at every level
// (a refused permission is Info, a dropped ChannelData is Error), so all of
// it goes to Debug; the operator-facing events are logged by this package.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) logf(level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug(fmt.Sprintf(format, args...), "pion_level", level)
}

func (l pionLogger) Trace(msg string)                  { l.logf("trace", "%s", msg) }
func (l pionLogger) Tracef(format string, args ...any) { l.logf("trace", format, args...) }
func (l pionLogger) Debug(msg string)                  { l.logf("debug", "%s", msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf("debug", format, args...) }
func (l pionLogger) Info(msg string)                   { l.logf("info", "%s", msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.logf("info", format, args...) }
func (l pionLogger) Warn(msg string)                   { l.logf("warn", "%s", msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.logf("warn", format, args...) }
func (l pionLogger) Error(msg string)                  { l.logf("error", "%s", msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.logf("error", format, args...) }
