#!/usr/bin/env bash
# install.sh installs the pinned node clients that internal/interop runs
# (bittorrent-tracker, @roamhq/wrtc) into testdata/clients/node_modules from
# package-lock.json. It does nothing when that lockfile was already installed
# with this node version, so .ci/run can call it every time.
#
# --ignore-scripts: the only install scripts in the tree are node-gyp-build
# for ws's optional bufferutil and utf-8-validate, which ship prebuilt
# binaries (and ws works without them); @roamhq/wrtc's native binary comes as
# the optional dependency @roamhq/wrtc-<os>-<arch> from the npm registry, so no
# download or native build happens here.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

stamp=node_modules/.boxsignal-installed
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node --version)"

if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
	echo "testdata/clients: node_modules up to date"
	exit 0
fi

npm ci --ignore-scripts --no-audit --no-fund
node -e '
	const w = require("@roamhq/wrtc")
	if (typeof w.RTCPeerConnection !== "function") throw new Error("@roamhq/wrtc: no RTCPeerConnection")
	require("bittorrent-tracker")
	console.log("testdata/clients: bittorrent-tracker " + require("bittorrent-tracker/package.json").version +
		", @roamhq/wrtc " + require("@roamhq/wrtc/package.json").version + " ready")
'
echo "$want" >"$stamp"
