#!/usr/bin/env node
// wrtc-pair.js makes N bittorrent-tracker clients (the code browsers run) meet
// through a WebSocket tracker and checks that every pair of them opens a WebRTC
// data channel (@roamhq/wrtc) and carries bytes both ways.
//
//   node wrtc-pair.js -tracker ws://HOST:PORT[,ws://HOST2:PORT2...] [-room HEX40]
//                     [-clients 2] [-bytes 65536] [-timeout-ms 40000]
//                     [-shared-socket] [-together]
//
// With several tracker URLs, client i announces to URL i modulo their number
// and to it alone: two trackers that know nothing of each other's peers
// (separate Boxes without federation) leave the clients unconnected.
//
// The same settings come from the environment: TRACKER_URL, ROOM, CLIENTS,
// BYTES, TIMEOUT_MS, SHARED_SOCKET=1, TOGETHER=1 (flags win). It prints one
// JSON line on stdout and exits 0 when every pair exchanged all bytes, 1 on a
// failed check or the time-out, 2 on bad arguments. Progress goes to stderr.
//
// No ICE servers are configured, so only host candidates are used and nothing
// but the tracker and the other peers' host addresses is contacted. WebRTC
// ignores loopback candidates: run it where a non-loopback interface exists
// (the test runs it inside a network namespace with a veth address).
//
// Peers stay open until the process exits: @roamhq/wrtc can crash (SIGSEGV)
// when one side sends while the other closes, so nothing is closed on the way
// out. A crash shows up as death by signal with no result line, or after it.
'use strict'

const crypto = require('crypto')
const Client = require('bittorrent-tracker')
const wrtc = require('@roamhq/wrtc')

const CHUNK = 16 * 1024 // data channel messages well under every SCTP limit

function parseArgs (argv, env) {
  const opts = {
    tracker: env.TRACKER_URL || '',
    room: env.ROOM || crypto.randomBytes(20).toString('hex'),
    clients: Number(env.CLIENTS || 2),
    bytes: Number(env.BYTES || 64 * 1024),
    timeoutMs: Number(env.TIMEOUT_MS || 40000),
    sharedSocket: env.SHARED_SOCKET === '1',
    together: env.TOGETHER === '1'
  }
  const names = { tracker: 'tracker', room: 'room', clients: 'clients', bytes: 'bytes', 'timeout-ms': 'timeoutMs' }
  for (let i = 0; i < argv.length; i++) {
    let name = argv[i].replace(/^--?/, '')
    if (name === 'shared-socket') {
      opts.sharedSocket = true
      continue
    }
    if (name === 'together') {
      opts.together = true
      continue
    }
    let value
    const eq = name.indexOf('=')
    if (eq >= 0) {
      value = name.slice(eq + 1)
      name = name.slice(0, eq)
    } else {
      value = argv[++i]
    }
    const key = names[name]
    if (!key || value === undefined) throw new Error(`unknown or incomplete argument ${JSON.stringify(argv[i])}`)
    opts[key] = typeof opts[key] === 'number' ? Number(value) : value
  }
  opts.trackers = opts.tracker.split(',')
  for (const u of opts.trackers) {
    if (!/^wss?:\/\//.test(u)) throw new Error(`-tracker ${JSON.stringify(opts.tracker)}: want ws://HOST:PORT, or several separated by commas`)
  }
  if (!/^[0-9a-fA-F]{40}$/.test(opts.room)) throw new Error(`-room ${JSON.stringify(opts.room)}: want 40 hex digits`)
  if (!Number.isInteger(opts.clients) || opts.clients < 2 || opts.clients > 8) throw new Error('-clients: want 2..8')
  if (opts.sharedSocket && opts.clients !== 2) throw new Error('-shared-socket: only with -clients 2')
  if (opts.sharedSocket && opts.trackers.length > 1) throw new Error('-shared-socket: only with one tracker')
  if (!Number.isInteger(opts.bytes) || opts.bytes < 1) throw new Error('-bytes: want a positive integer')
  if (!(opts.timeoutMs > 0)) throw new Error('-timeout-ms: want a positive number')
  opts.room = opts.room.toLowerCase()
  return opts
}

// payload returns the bytes that peer `from` sends to peer `to`: a pattern
// the receiver can check without having been told anything in advance.
function payload (from, to, n) {
  const seed = crypto.createHash('sha256').update(from + '>' + to).digest()
  const buf = Buffer.alloc(n)
  for (let i = 0; i < n; i++) buf[i] = seed[i % seed.length] ^ (i & 0xff)
  return buf
}

function progress (msg, attrs = {}) {
  process.stderr.write(JSON.stringify({ t_ms: Date.now() - t0, msg, ...attrs }) + '\n')
}

const t0 = Date.now()
let opts
try {
  opts = parseArgs(process.argv.slice(2), process.env)
} catch (err) {
  process.stdout.write(JSON.stringify({ connected: false, error: 'bad arguments: ' + err.message }) + '\n')
  process.exit(2)
}

// links[a][b] tracks what a has seen of b over any connection between them.
const ids = []
const links = {}
const clients = []
const startedMs = [] // when each client sent its first announce
const warnings = []
let finished = false

for (let i = 0; i < opts.clients; i++) {
  // Distinct peer ids with a recognisable prefix: "-BS0001-" then random.
  const id = Buffer.concat([Buffer.from('-BS0001-'), crypto.randomBytes(12)]).toString('hex')
  ids.push(id)
  links[id] = {}
}
for (const a of ids) {
  for (const b of ids) {
    if (a !== b) links[a][b] = { openMs: null, received: 0, expected: payload(b, a, opts.bytes), corrupt: false, conns: 0 }
  }
}

function pairsDone () {
  for (const a of ids) {
    for (const b of ids) {
      if (a === b) continue
      const l = links[a][b]
      if (l.openMs === null || l.received < opts.bytes || l.corrupt) return false
    }
  }
  return true
}

function summary () {
  const pairs = []
  let connectMs = 0
  let bytes = 0
  for (let i = 0; i < ids.length; i++) {
    for (let j = i + 1; j < ids.length; j++) {
      const ab = links[ids[i]][ids[j]]
      const ba = links[ids[j]][ids[i]]
      const open = [ab.openMs, ba.openMs].filter(v => v !== null)
      const pairConnect = open.length === 2 ? Math.max(...open) : null
      if (pairConnect !== null) connectMs = Math.max(connectMs, pairConnect)
      bytes += ab.received + ba.received
      pairs.push({
        a: i,
        b: j,
        connected: pairConnect !== null,
        connect_ms: pairConnect,
        a_to_b_bytes: ba.received,
        b_to_a_bytes: ab.received,
        corrupt: ab.corrupt || ba.corrupt,
        connections: Math.max(ab.conns, ba.conns)
      })
    }
  }
  return { pairs, connectMs, bytes }
}

function finish (ok, reason) {
  if (finished) return
  finished = true
  const s = summary()
  const out = {
    connected: ok,
    clients: opts.clients,
    tracker: opts.tracker,
    client_trackers: ids.map((_, n) => opts.trackers[n % opts.trackers.length]),
    started_ms: startedMs,
    shared_socket: opts.sharedSocket,
    together: opts.together,
    room: opts.room,
    connect_ms: ok ? s.connectMs : null,
    total_ms: Date.now() - t0,
    bytes_per_direction: opts.bytes,
    bytes_exchanged: s.bytes,
    pairs: s.pairs
  }
  if (!ok) out.error = reason
  if (warnings.length) out.warnings = warnings.slice(0, 20)
  // Exit without closing peers or sockets (see the header): the write is
  // flushed first because stdout may be a pipe.
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(ok ? 0 : 1))
}

setTimeout(() => {
  const s = summary()
  const missing = s.pairs.filter(p => !p.connected || p.a_to_b_bytes < opts.bytes || p.b_to_a_bytes < opts.bytes)
    .map(p => `${p.a}-${p.b}: ${p.connected ? 'connected' : 'not connected'}, ${p.a_to_b_bytes}/${p.b_to_a_bytes} of ${opts.bytes} bytes`)
  const last = warnings.length ? ` (last warning: ${warnings[warnings.length - 1]})` : ''
  finish(false, `timed out after ${opts.timeoutMs} ms: ${missing.join('; ')}${last}`)
}, opts.timeoutMs) // keeps the process alive while the clients retry

function onPeer (self, peer) {
  const other = peer.id
  const l = links[self] && links[self][other]
  if (!l) {
    warnings.push(`client ${ids.indexOf(self)}: peer ${other} is none of ours`)
    return
  }
  peer.on('error', err => {
    warnings.push(`client ${ids.indexOf(self)} <-> ${ids.indexOf(other)}: ${err.message}`)
  })
  peer.on('connect', () => {
    l.conns++
    if (l.openMs === null) {
      l.openMs = Date.now() - t0
      progress('data channel open', { from: ids.indexOf(self), to: ids.indexOf(other) })
    }
    // Send the whole payload on every connection of the pair; the receiver
    // counts the first complete copy per connection.
    const data = payload(self, other, opts.bytes)
    for (let off = 0; off < data.length; off += CHUNK) {
      peer.send(data.subarray(off, Math.min(off + CHUNK, data.length)))
    }
  })
  let got = 0 // bytes on this connection
  peer.on('data', buf => {
    for (let i = 0; i < buf.length; i++) {
      if (got + i < opts.bytes && buf[i] !== l.expected[got + i]) l.corrupt = true
    }
    got += buf.length
    if (got > l.received) l.received = Math.min(got, opts.bytes)
    if (l.corrupt) return finish(false, `corrupt data from client ${ids.indexOf(other)} to client ${ids.indexOf(self)}`)
    if (pairsDone()) finish(true)
  })
}

// announceURL gives each client its own tracker URL, and so its own socket:
// bittorrent-tracker shares one socket among all clients of a process that use
// the same URL, and clients of one info_hash on one socket all take every offer
// delivered to it. Browsers of different users never share a socket. With
// -shared-socket (two clients only) both use one socket, the way two
// WebTorrent instances in one page do: the tracker must then keep two peer_ids
// on one connection apart.
function announceURL (n) {
  const tracker = opts.trackers[n % opts.trackers.length]
  if (opts.sharedSocket) return tracker
  const u = new URL(tracker)
  u.searchParams.set('client', String(n))
  return u.toString()
}

for (const id of ids) {
  const client = new Client({
    infoHash: opts.room,
    peerId: id,
    announce: [announceURL(ids.indexOf(id))],
    port: 6881, // required by the constructor, unused by WebSocket trackers
    wrtc,
    rtcConfig: { iceServers: [] }
  })
  const n = ids.indexOf(id)
  client.on('error', err => finish(false, `client ${n}: tracker error: ${err.message}`))
  client.on('warning', err => {
    warnings.push(`client ${n}: ${err.message}`)
    progress('warning', { client: n, err: err.message })
  })
  client.on('update', data => progress('announce response', { client: n, complete: data.complete, incomplete: data.incomplete }))
  client.on('peer', peer => onPeer(id, peer))
  clients.push(client)
}

// Start one after another so the first client is in the swarm when the next
// announces with offers; the others announce together afterwards.
// If no announce response comes (a tracker that never answers), start them
// anyway after a while so the failure shows up as a missing connection.
// With -together all start at once, as browsers opened at the same moment:
// each may then find the swarm empty and meet the others only when one of
// them re-announces (on the interval the tracker sent).
let othersStarted = false
function startOthers () {
  if (othersStarted) return
  othersStarted = true
  for (let n = 1; n < clients.length; n++) {
    startedMs[n] = Date.now() - t0
    clients[n].start()
  }
}
startedMs[0] = Date.now() - t0
clients[0].start()
if (opts.together) {
  startOthers()
} else {
  clients[0].once('update', startOthers)
  setTimeout(startOthers, 3000).unref()
}

process.on('exit', code => {
  if (!finished) {
    process.stdout.write(JSON.stringify({ connected: false, error: `exited (code ${code}) before a result` }) + '\n')
    process.exitCode = 1
  }
})

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => finish(false, `stopped by ${sig}`))
}
