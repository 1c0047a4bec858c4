#!/usr/bin/env node
// reference-tracker.js runs bittorrent-tracker's own WebSocket tracker server
// (the reference implementation signald is measured against) with signald's
// command line: -addr HOST:PORT (or SIGNALD_ADDR), the tracker WebSocket on
// every path and /healthz answering 200 "ok" on the same port. It logs to
// stderr and exits on SIGINT or SIGTERM.
'use strict'

const { Server } = require('bittorrent-tracker')

function parseAddr (argv, env) {
  let addr = env.SIGNALD_ADDR || '127.0.0.1:8000'
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '-addr' || a === '--addr') {
      addr = argv[++i]
    } else if (a.startsWith('-addr=') || a.startsWith('--addr=')) {
      addr = a.slice(a.indexOf('=') + 1)
    } else {
      throw new Error(`unknown argument ${JSON.stringify(a)}`)
    }
  }
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(addr || '')
  if (!m) throw new Error(`invalid -addr ${JSON.stringify(addr)}, want HOST:PORT`)
  return { host: m[1] || '0.0.0.0', port: Number(m[2]) }
}

function log (msg, attrs = {}) {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), component: 'reference-tracker', msg, ...attrs }) + '\n')
}

let addr
try {
  addr = parseAddr(process.argv.slice(2), process.env)
} catch (err) {
  log('bad arguments', { err: err.message })
  process.exit(2)
}

const server = new Server({ udp: false, http: false, ws: true, stats: false })

// The server adds its own 404 handler on the next tick; this one runs first.
server.http.on('request', (req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' })
    res.end('ok')
  }
})
server.on('error', err => log('error', { err: err.message }))
server.on('warning', err => log('warning', { err: err.message }))
// A line per peer is debug logging; load tests run the reference without it.
if (process.env.REFERENCE_LOG_PEERS === '1') {
  server.on('start', addrStr => log('peer started', { peer: addrStr }))
}

server.listen(addr.port, addr.host, () => {
  log('listening', { addr: `${addr.host}:${server.http.address().port}` })
})

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    log('stopping', { signal: sig })
    server.close(() => process.exit(0))
    setTimeout(() => process.exit(0), 2000).unref()
  })
}
