// Package interop holds end-to-end tests that run Box Signal's binaries
// against outside implementations as real processes: the WebTorrent tracker
// client that browsers run (bittorrent-tracker) with a real WebRTC stack
// (@roamhq/wrtc) in node, inside a network namespace made for the test: one
// signald, or two federated signald Boxes with a client on each.
// It has no code of its own; testdata/clients/install.sh installs the node
// side, and .ci/run calls it so that in CI these tests never skip.
package interop
