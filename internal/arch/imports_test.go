package arch

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/boxsignal/boxsignal/"

// forbidden lists, for each package, the packages of this module it must
// never depend on, directly or not.
var forbidden = map[string][]string{
	"signal/wire": {"signal", "stunturn", "dht", "bugout", "cmd/", "loadtest", "internal/"},
	"signal":      {"stunturn", "dht", "bugout", "cmd/", "loadtest"},
	"stunturn":    {"signal", "dht", "bugout", "cmd/", "loadtest"},
	"loadtest":    {"signal", "stunturn", "dht", "bugout", "cmd/"}, // black box: only signal/wire
}

func TestImportBoundaries(t *testing.T) {
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(dep, mod)
			if !ok || rel == pkg {
				continue
			}
			for _, b := range bad {
				if b == "signal" && rel == "signal/wire" && pkg == "loadtest" {
					continue
				}
				if rel == b || strings.HasPrefix(rel, strings.TrimSuffix(b, "/")+"/") {
					t.Errorf("%s imports %s (ARCHITECTURE.md forbids %s)", pkg, rel, b)
				}
			}
		}
	}
}
