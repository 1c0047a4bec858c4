package netns

import (
	"os"
	"testing"
)

// Unavailable skips the test because something outside Go that it needs is
// missing (root, ip, a kernel feature, node_modules), or fails it when the
// environment has CI=true: CI installs everything, so a skip there would
// hide a broken install. [New] applies it; tests that need other outside
// tools can too.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true, so this fails instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}
