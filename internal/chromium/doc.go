// Package chromium is test infrastructure: it runs Debian's headless
// Chromium with this project's switches (nothing that phones home, every
// host name resolved as the caller's rules say), optionally inside a network
// namespace through a command wrapper such as `ip netns exec NAME`, and
// drives one page over the DevTools protocol on --remote-debugging-pipe (no
// debugging port, so driving the browser sends no packet). It also names
// the directory where tests keep screenshots ($ARTIFACTS).
//
// It works on Linux only and is for tests only; nothing outside _test.go
// files and other test harnesses (internal/bugoutlab) imports it.
package chromium
