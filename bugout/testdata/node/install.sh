#!/usr/bin/env bash
# install.sh installs the pinned bugout@0.0.13 node peer (webtorrent 1.9.7,
# bittorrent-protocol 3.5.5, tweetnacl 1.0.3, …) that bugout/interop_test.go
# runs, into bugout/testdata/node/node_modules from package-lock.json. It does
# nothing when that lockfile was already installed with this node version, so
# .ci/run can call it every time.
#
# --ignore-scripts: the install scripts in the tree (node-gyp-build for
# optional native speedups such as bufferutil, utf-8-validate, utp-native,
# bufferutil's fallbacks) are not needed: the interop peer runs with
# dht/utp/lsd/trackers off and pure-JS fallbacks, over TCP on 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

stamp=node_modules/.boxsignal-installed
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node --version)"

if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
	echo "bugout/testdata/node: node_modules up to date"
	exit 0
fi

npm ci --ignore-scripts --no-audit --no-fund
node -e '
	require("./loopback-guard")
	const Bugout = require("bugout")
	if (typeof Bugout.encodeseed !== "function") throw new Error("bugout: no encodeseed")
	console.log("bugout/testdata/node: bugout " + require("bugout/package.json").version +
		", webtorrent " + require("webtorrent/package.json").version + " ready")
'
echo "$want" >"$stamp"
