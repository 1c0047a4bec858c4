// Package bugoutlab is the test harness of the Bugout transport tests: a
// network namespace (internal/netns) holding a real signald built from
// ./cmd/signald, sockets made inside it for in-process Go peers, helpers to
// build and run Go and node programs there, and a headless Chromium in it
// (internal/chromium), with a static HTTP server for its pages.
// WebRTC stacks ignore loopback, so every peer works on the namespace's
// 198.18.0.1.
//
// It is for tests only; nothing outside _test.go files imports it.
package bugoutlab
