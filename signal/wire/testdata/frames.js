// frames.js writes the client frames in this folder the way webtorrent's
// tracker client (bittorrent-tracker 9.19, lib/client/websocket-tracker.js)
// and other WebTorrent clients put them on the wire: JSON.stringify of an
// object in the client's key order, 20-byte values as "binary" strings
// (Buffer.toString('binary')). Run with `node frames.js` in this folder; the
// values are fixed so the output does not change.
'use strict'
const fs = require('fs')

const bin = (bytes) => Buffer.from(bytes).toString('binary')
// seq makes 20 distinct bytes from a seed, with controls and bytes >= 0x80.
const seq = (seed) => bin(Array.from({ length: 20 }, (_, i) => (seed * 53 + i * 29) & 0xff))

// The info_hash of bugout-wire.md §3.1 starts B0 C2 88 A5 05 and ends DA 97.
const infoHash = bin([0xb0, 0xc2, 0x88, 0xa5, 0x05, 0x22, 0x5c, 0x7f, 0x00, 0x1f,
  0x80, 0xff, 0x3c, 0x2f, 0x0a, 0x0d, 0x09, 0x41, 0xda, 0x97])
const peerId = '-WW0109-taaQ+kUnnQ6z'

// sdp is a non-trickle Chrome data-channel offer or answer with its
// candidates, about 600 bytes.
const sdp = (type, n) => [
  'v=0',
  `o=- ${4611731400430051336n + BigInt(n)} 2 IN IP4 127.0.0.1`,
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'a=extmap-allow-mixed',
  'a=msid-semantic: WMS',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  `a=candidate:${1467250027 + n} 1 udp 2122260223 192.168.1.${10 + n} ${50000 + n} typ host generation 0 network-id 1`,
  `a=candidate:${842163049 + n} 1 udp 1686052607 203.0.113.${7 + n} ${50000 + n} typ srflx raddr 192.168.1.${10 + n} rport ${50000 + n} generation 0 network-id 1`,
  `a=ice-ufrag:Xk${n}q`,
  `a=ice-pwd:p${n}Wf0vBJbRw2o2qYt7zFZx8u/`,
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 3C:4A:AA:E1:96:21:7E:30:B8:E5:1E:0D:33:39:82:4B:77:F3:C4:52:07:1C:69:6C:0E:9D:07:B2:5D:1C:0F:84',
  `a=setup:${type === 'offer' ? 'actpass' : 'active'}`,
  'a=mid:0',
  'a=sctp-port:5000',
  'a=max-message-size:262144',
  ''
].join('\r\n')

const frames = {
  // webtorrent 1.9.7 (npm Bugout) joining a room as a seeder: websocket-tracker.js:40-66.
  'webtorrent-announce-started.json': {
    numwant: 5, uploaded: 0, downloaded: 9, left: 0, event: 'started', action: 'announce',
    info_hash: infoHash, peer_id: peerId,
    offers: [0, 1, 2, 3, 4].map((i) => ({ offer: { type: 'offer', sdp: sdp('offer', i) }, offer_id: seq(i + 1) }))
  },
  // The periodic re-announce: no event, 5 fresh offers.
  'webtorrent-announce-update.json': {
    numwant: 5, uploaded: 0, downloaded: 9, left: 0, action: 'announce',
    info_hash: infoHash, peer_id: peerId,
    offers: [5, 6, 7, 8, 9].map((i) => ({ offer: { type: 'offer', sdp: sdp('offer', i) }, offer_id: seq(i + 1) }))
  },
  // A magnet leecher: left is NaN before metadata, which JSON.stringify writes as null.
  'webtorrent-announce-magnet.json': {
    numwant: 5, uploaded: 0, downloaded: 0, left: NaN, event: 'started', action: 'announce',
    info_hash: infoHash, peer_id: '-WW0100-4fRrT9bQ1xZ0',
    offers: [10, 11, 12, 13, 14].map((i) => ({ offer: { type: 'offer', sdp: sdp('offer', i) }, offer_id: seq(i + 1) }))
  },
  // The answer to an offer: websocket-tracker.js:276-290.
  'webtorrent-answer.json': {
    action: 'announce', info_hash: infoHash, peer_id: '-WW0109-Bz8d2LpQw0aE',
    to_peer_id: peerId, answer: { type: 'answer', sdp: sdp('answer', 20) }, offer_id: seq(3)
  },
  // destroy(): stopped carries no offers or numwant.
  'webtorrent-announce-stopped.json': {
    uploaded: 0, downloaded: 9, left: 0, event: 'stopped', action: 'announce',
    info_hash: infoHash, peer_id: peerId
  },
  'webtorrent-scrape.json': { action: 'scrape', info_hash: [infoHash, seq(40)] },
  // trystero 0.25: 3 offers, a base36 info_hash, the SDP encrypted inside the offer.
  'trystero-announce.json': {
    action: 'announce', info_hash: '4jk0x2m9qpz7c1dtw8ye', numwant: 3, peer_id: 'x7Qm2LkP0aZr9TbVc3Ns',
    offers: [0, 1, 2].map((i) => ({
      offer_id: 'o' + i + 'Hq7mZk2pLw9Rt4Xc8V',
      offer: { type: 'offer', sdp: Buffer.from(sdp('offer', 30 + i)).toString('base64').slice(0, 600) + '$' + 'iv' + i }
    }))
  },
  // trystero's passive peer: no offers, a seeder.
  'trystero-announce-passive.json': {
    action: 'announce', info_hash: '4jk0x2m9qpz7c1dtw8ye', numwant: 0, peer_id: 'Pp4sS1v3Ee7Ww0Qq8Zz2', offers: [], left: 0
  },
  // anacrolix/torrent: one offer and an empty event.
  'anacrolix-announce.json': {
    action: 'announce', event: '', info_hash: infoHash, peer_id: '-GT0003-Zz9Yy8Xx7Ww6',
    numwant: 1, left: 1024, uploaded: 0, downloaded: 0,
    offers: [{ offer: { type: 'offer', sdp: sdp('offer', 40) }, offer_id: seq(50) }]
  }
}

for (const [name, msg] of Object.entries(frames)) fs.writeFileSync(name, JSON.stringify(msg))
