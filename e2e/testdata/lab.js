// lab.js is the lab page's side of the e2e test (e2e/lab_linux_test.go):
// the test calls window.lab over the DevTools protocol. The page joins a
// Bugout room with the Box's tracker as the only announce URL and the ICE
// servers the Box's /ice hands out as the only ones; nothing else.
"use strict";
(function () {
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);

  // Every RTCPeerConnection the page makes (WebTorrent makes several per
  // announce), so that getStats can find the one that connected.
  const pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      pcs.push(this);
      this.addEventListener("connectionstatechange", () => {
        if (this.connectionState === "connected" && state.iceConnectedMs === null) {
          state.iceConnectedMs = now() - state.startMs;
        }
      });
    }
  };

  const state = {
    name: "",
    address: "",
    startMs: null,
    iceConnectedMs: null,
    seen: {},       // address -> ms after start
    messages: [],   // {from, text}
    errors: [],
  };
  let bugout = null;

  // waitFor polls cond until it returns a value or timeoutMs passes.
  function waitFor(cond, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      const tick = () => {
        const v = cond();
        if (v) return resolve(v);
        if (performance.now() > deadline) return reject(new Error("timeout after " + timeoutMs + " ms waiting for " + what));
        setTimeout(tick, 50);
      };
      tick();
    });
  }

  function withTimeout(p, timeoutMs, what) {
    return Promise.race([p, new Promise((_, reject) =>
      setTimeout(() => reject(new Error("timeout after " + timeoutMs + " ms waiting for " + what)), timeoutMs))]);
  }

  window.lab = {
    // start fetches the ICE servers from the Box and joins room.
    async start(opts) {
      state.name = opts.name;
      const resp = await fetch(opts.ice, {cache: "no-store"});
      if (!resp.ok) throw new Error("GET " + opts.ice + ": " + resp.status);
      const {iceServers} = await resp.json();
      state.startMs = now();
      bugout = new Bugout(opts.room, {announce: [opts.tracker], iceServers});
      state.address = bugout.address();
      bugout.on("seen", (address) => {
        if (!(address in state.seen)) state.seen[address] = now() - state.startMs;
      });
      bugout.on("message", (address, message) => {
        state.messages.push({from: address, text: String(message)});
      });
      bugout.register("whoami", (address, args, cb) => cb({name: state.name, echo: args}));
      bugout.wt.on("error", (e) => state.errors.push(String(e && e.message || e)));
      return {address: state.address, iceServers};
    },

    // waitSeen resolves with the first peer seen and when, in ms after start.
    async waitSeen(timeoutMs) {
      const address = await waitFor(() => Object.keys(state.seen)[0], timeoutMs, "a peer to be seen");
      return {address, ms: state.seen[address], iceConnectedMs: state.iceConnectedMs};
    },

    send(text) { bugout.send(text); },

    async waitMessage(text, timeoutMs) {
      const m = await waitFor(() => state.messages.find((m) => m.text === text), timeoutMs, "message " + JSON.stringify(text));
      return m.from;
    },

    rpc(address, args, timeoutMs) {
      return withTimeout(new Promise((resolve) => bugout.rpc(address, "whoami", args, resolve)), timeoutMs, "rpc whoami");
    },

    // pair reports the selected candidate pair of every connected
    // RTCPeerConnection, from getStats.
    async pairs() {
      const out = [];
      for (const pc of pcs) {
        if (pc.connectionState !== "connected") continue;
        const stats = await pc.getStats();
        let pairId = null;
        stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
        const pair = pairId && stats.get(pairId);
        if (!pair) continue;
        const c = (id) => {
          const s = stats.get(id) || {};
          return {type: s.candidateType, address: s.address, port: s.port, protocol: s.protocol, relayProtocol: s.relayProtocol};
        };
        out.push({local: c(pair.localCandidateId), remote: c(pair.remoteCandidateId), rttMs: Math.round((pair.currentRoundTripTime || 0) * 1000)});
      }
      return out;
    },

    // signalled counts the connections that got the far side's session
    // description through the tracker: signalling worked even if ICE did not.
    signalled() { return pcs.filter((pc) => pc.remoteDescription !== null).length; },

    state() { return state; },
  };
})();
