//go:build !linux

// Command turnbench measures the Box's STUN/TURN server against coturn; it
// needs Linux network namespaces (see main_linux.go).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "turnbench: Linux only (it runs the servers in a network namespace)")
	os.Exit(1)
}
