// Package netns makes throw-away Linux network namespaces for tests: each has
// lo up and one non-loopback address that exists only inside it, so WebRTC
// stacks (which ignore loopback candidates) can connect there without a packet
// touching the machine's real interfaces.
//
// A test creates one with [New], runs programs in it with [NS.Command] and
// [NS.Start], and reaches servers in it from the test process with
// [NS.DialContext]. Everything is undone by t.Cleanup. It needs root and
// iproute2's ip on Linux; without them New skips the test, or fails it when
// the environment has CI=true, so CI never silently skips.
package netns
