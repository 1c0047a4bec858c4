// A real bugout@0.0.13 peer (webtorrent@1.9.7) listening for BitTorrent on
// 127.0.0.1 only, driven by bugout/interop_test.go. It prints one JSON line
// per event: {"node": kind, "v": value}. It exits when stdin closes (the Go
// test holds it) or after 60 s.
//   node node-peer.js [room]     (no room: server mode, identifier = own address)
require('./loopback-guard')
const path = require('path')
const net = require('net')
// Node sockets default to Nagle; with bittorrent-protocol's two writes per
// message (header, then payload) that stalls each message ~40 ms on the
// receiver's delayed ACK, which no WebRTC data channel has. NAGLE=1 keeps it.
if (!process.env.NAGLE) {
  const emit = net.Server.prototype.emit
  net.Server.prototype.emit = function (ev, sock, ...rest) {
    if (ev === 'connection' && sock && sock.setNoDelay) sock.setNoDelay(true)
    return emit.call(this, ev, sock, ...rest)
  }
}
const NM = process.env.NM || path.join(__dirname, 'node_modules')
const WebTorrent = require(NM + '/webtorrent')
const Bugout = require(NM + '/bugout')
const wt = new WebTorrent({ dht: false, tracker: false, lsd: false, utp: false, webSeeds: false })
const room = process.argv[2]
const seed = Bugout.encodeseed(Buffer.alloc(32, 0x23))
const b = room ? new Bugout(room, { wt, seed }) : new Bugout({ wt, seed })
const out = (k, v) => console.log(JSON.stringify({ node: k, v }))
b.register('ping', (address, args, cb) => { args.pong = true; cb(args) }, 'echo with pong')
b.torrent.on('ready', () => out('listening', { port: wt.address().port, identifier: b.identifier, address: b.address(), infoHash: b.torrent.infoHash }))
for (const ev of ['seen', 'server', 'ping', 'left', 'rpc-response']) b.on(ev, (...a) => out(ev, a))
b.on('message', (addr, msg, packet) => {
  out('message', [addr, msg])
  // latency probe: answer {echo: n} at once with a broadcast {echoed: n}
  if (msg && typeof msg.echo === 'number') b.send({ echoed: msg.echo })
  // drive the rest of the exchange on request, so it never races the Go side
  if (msg && msg.please === 'dm') b.send(addr, { secret: 'for go only' })
  if (msg && msg.please === 'rpc') b.rpc(addr, 'echo', { q: 42 }, r => out('rpc-callback', r))
})
b.on('rpc', (addr, call, args, nonce) => out('rpc', [addr, call, args, nonce]))
process.stdin.on('end', () => { b.destroy(); setTimeout(() => process.exit(0), 200) })
process.stdin.resume()
setTimeout(() => process.exit(0), 60000)
