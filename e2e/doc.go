// Package e2e is Box Signal's browser lab: headless Chromiums behind NAT
// routers meet through one Box (signald's tracker, STUN/TURN and /ice) in a
// small Internet of Linux network namespaces, and the test reports what
// they could do. It holds only tests; docs/e2e.md describes the topology,
// the checks and how to run them (go test -v -run Lab ./e2e).
package e2e
