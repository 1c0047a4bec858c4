package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// The stun and turn loads run this program again inside their network
// namespace; under go test that is the test binary, so TestMain runs those
// children as main would.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "stun" || os.Args[1] == "turn") {
		if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
			os.Stderr.WriteString("loadtest: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	// A race-enabled binary sleeps a second at exit to let late reports
	// land; the children are short and wait for their goroutines, so they
	// skip that (GORACE is inherited).
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		os.Setenv("GORACE", strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	code := m.Run()
	removeBuilt()
	os.Exit(code)
}
