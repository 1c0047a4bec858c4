// A real bugout@0.0.13 peer (webtorrent 1.9.7, simple-peer, @roamhq/wrtc)
// that meets its room through a WebSocket tracker over WebRTC, driven by the
// Go tests inside a network namespace (bugout/transport, cmd/peer). No STUN:
// iceServers is empty, so only host candidates (the namespace's address).
//   node node-rtc-peer.js ROOM TRACKER_URL
// It prints one JSON line per event: {"node": kind, "v": value}. Commands
// come as JSON lines on stdin:
//   {"send": msg}                       broadcast
//   {"dm": [address, msg]}              encrypted to address
//   {"rpc": [address|null, call, args]} null: the room's server
// It exits when stdin closes or after LIFETIME_MS (default 90 s).
const path = require('path')
const readline = require('readline')
const NM = process.env.NM || path.join(__dirname, 'node_modules')
const WebTorrent = require(NM + '/webtorrent')
const Bugout = require(NM + '/bugout')
const wrtc = require(NM + '/@roamhq/wrtc')

const [room, tracker] = process.argv.slice(2)
if (!room || !tracker) { console.error('usage: node-rtc-peer.js ROOM TRACKER_URL'); process.exit(2) }
const rtcConfig = { iceServers: [] }
const wt = new WebTorrent({ dht: false, lsd: false, utp: false, webSeeds: false, tracker: { wrtc, rtcConfig } })
const b = new Bugout(room, { wt, announce: [tracker], iceServers: [] })
const out = (k, v) => console.log(JSON.stringify({ node: k, v }))

b.register('ping', (address, args, cb) => { args = args || {}; args.pong = true; cb(args) }, 'echo with pong')
b.register('echo', (address, args, cb) => { cb({ echoed: args, from: address }) }, 'echo the args')
b.on('announce', () => out('ready', { address: b.address(), identifier: b.identifier }))
for (const ev of ['seen', 'server', 'left']) b.on(ev, (...a) => out(ev, a))
for (const ev of ['wireseen', 'wireleft']) b.on(ev, count => out(ev, [count])) // (count, wire)
b.on('message', (addr, msg) => {
  out('message', [addr, msg])
  // latency probe: answer {echo: n} at once with a broadcast {echoed: n}
  if (msg && typeof msg.echo === 'number') b.send({ echoed: msg.echo })
})
b.on('rpc', (addr, call, args) => out('rpc', [addr, call, args]))
wt.on('error', e => out('error', String(e)))

readline.createInterface({ input: process.stdin }).on('line', line => {
  let c
  try { c = JSON.parse(line) } catch (e) { out('error', 'bad command ' + line); return }
  if ('send' in c) b.send(c.send)
  if (c.dm) b.send(c.dm[0], c.dm[1])
  if (c.rpc) {
    const [addr, call, args] = c.rpc
    const cb = r => out('rpc-result', { call, result: r })
    if (addr) b.rpc(addr, call, args, cb); else b.rpc(call, args, cb)
  }
}).on('close', () => { b.destroy(); setTimeout(() => process.exit(0), 300) })
setTimeout(() => process.exit(0), Number(process.env.LIFETIME_MS || 90000))
