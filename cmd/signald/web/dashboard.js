// Box Signal dashboard: live figures from /events (Server-Sent Events) and
// charts of the last minutes, drawn on canvases. Same-origin only; no
// libraries, fonts or anything else from the network.
"use strict";
(function () {
  var history = [];
  var MAX = 300;

  function fmtNum(v) {
    if (v >= 100 || v === 0 || Number.isInteger(v)) return Math.round(v).toLocaleString("en");
    return v.toFixed(v >= 10 ? 1 : 2);
  }
  function fmtBytes(v) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i === 0 ? Math.round(v) : v.toFixed(1)) + " " + u[i];
  }
  var figures = ["connections", "swarms", "peers", "offersPerSec", "answersPerSec", "announcesPerSec",
    "turnAllocations", "turnBytesPerSec", "rssBytes"];

  function show(s) {
    var fr = document.getElementById("friends"), dht = document.getElementById("dht");
    if (fr && s.friends >= 0) fr.textContent = fmtNum(s.friendsUp) + " / " + fmtNum(s.friends - s.friendsUp);
    if (dht && s.friends >= 0) dht.textContent = s.dhtPeers > 0 ? fmtNum(s.dhtPeers) + " Boxes" : "no peers";
    figures.forEach(function (k) {
      var el = document.getElementById(k);
      if (!el || el.textContent === "off") return;
      var unit = el.getAttribute("data-unit");
      el.textContent = unit === "B/s" ? fmtBytes(s[k]) + "/s" : unit === "B" ? fmtBytes(s[k]) : fmtNum(s[k]);
    });
  }

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function draw(id, keys, colors) {
    var c = document.getElementById(id);
    if (!c || !c.getContext) return;
    var dpr = window.devicePixelRatio || 1;
    var w = c.clientWidth || 600, h = c.clientHeight || 120;
    if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    var g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var max = 1;
    history.forEach(function (s) { keys.forEach(function (k) { if (s[k] > max) max = s[k]; }); });
    // The time axis spans what is kept, at least a minute.
    var pad = 14, now = Date.now(), span = Math.max(60000, history.length ? now - history[0].t : 0);
    g.strokeStyle = "rgba(127,127,127,.3)";
    g.beginPath(); g.moveTo(0, h - pad + .5); g.lineTo(w, h - pad + .5); g.stroke();
    g.fillStyle = cssVar("--muted"); g.font = "11px sans-serif";
    g.fillText(id === "chart-turn" ? fmtBytes(max) + "/s" : fmtNum(max), 2, 10);
    g.fillText(span >= 120000 ? Math.round(span / 60000) + " min" : Math.round(span / 1000) + " s", 2, h - 2);
    keys.forEach(function (k, i) {
      g.strokeStyle = cssVar(colors[i]); g.lineWidth = 1.5; g.beginPath();
      var started = false;
      history.forEach(function (s) {
        var x = w - (now - s.t) / span * w;
        var y = (h - pad) - s[k] / max * (h - pad - 14);
        if (!started) { g.moveTo(x, y); started = true; } else { g.lineTo(x, y); }
      });
      g.stroke();
    });
  }
  function drawAll() {
    draw("chart-peers", ["connections", "peers"], ["--line", "--line2"]);
    draw("chart-relay", ["offersPerSec", "answersPerSec"], ["--line", "--line2"]);
    draw("chart-turn", ["turnBytesPerSec"], ["--line"]);
  }

  function push(s) {
    history.push(s);
    if (history.length > MAX) history.shift();
    show(s);
    drawAll();
  }

  function connect() {
    var live = document.getElementById("live");
    var es = new EventSource("/events");
    es.addEventListener("history", function (e) {
      history = JSON.parse(e.data) || [];
      if (history.length) show(history[history.length - 1]);
      drawAll();
    });
    es.onmessage = function (e) { push(JSON.parse(e.data)); };
    es.onopen = function () { live.textContent = "live"; live.className = "on"; };
    es.onerror = function () { live.textContent = "reconnecting…"; live.className = "off"; };
  }

  function copyOnClick() {
    document.querySelectorAll(".copy").forEach(function (el) {
      el.title = "click to copy";
      el.addEventListener("click", function () {
        var text = el.textContent;
        var done = function () { el.classList.add("copied"); setTimeout(function () { el.classList.remove("copied"); }, 800); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () {});
        } else {
          var r = document.createRange(); r.selectNodeContents(el);
          var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
          try { document.execCommand("copy"); done(); } catch (e) { /* selected: the user copies */ }
        }
      });
    });
  }

  function admin() {
    var form = document.getElementById("admin-form");
    var input = document.getElementById("admin-token");
    var status = document.getElementById("admin-status");
    function unlock(token) {
      fetch("/admin/config.json", {headers: {Authorization: "Bearer " + token}, cache: "no-store"}).then(function (r) {
        if (r.status === 401) throw new Error("wrong token");
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      }).then(function (v) {
        sessionStorage.setItem("signald-admin", token);
        status.textContent = "unlocked";
        document.getElementById("admin-view").hidden = false;
        document.getElementById("admin-friends").textContent = v.friends ? v.friends.map(function (f) {
          return f.name + (f.connected ? " (up)" : " (down)");
        }).join(", ") || "none" : "not configured";
        document.getElementById("admin-dht").textContent = v.dht ? v.dht.policy + " policy, peer ID " + v.dht.peerID +
          (v.dht.enabled ? ", " + v.dht.routingTable + " Boxes in the routing table" : ", DHT off") : "not configured";
        document.getElementById("admin-datadir").textContent = v.dataDir;
        var body = document.getElementById("admin-options");
        body.textContent = "";
        v.options.forEach(function (o) {
          var tr = document.createElement("tr");
          [o.name, o.value, o.source].forEach(function (t, i) {
            var td = document.createElement("td"); td.textContent = t;
            if (i === 0) td.title = o.help;
            tr.appendChild(td);
          });
          body.appendChild(tr);
        });
      }).catch(function (e) {
        sessionStorage.removeItem("signald-admin");
        status.textContent = e.message;
      });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); unlock(input.value.trim()); });
    var saved = sessionStorage.getItem("signald-admin");
    if (saved) unlock(saved);
  }

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    copyOnClick();
    admin();
    setInterval(drawAll, 5000); // keep the time axis moving between samples
  });
})();
