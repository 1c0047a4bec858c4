package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/boxsignal/boxsignal/stunturn"
)

// boxJSON is the body of GET /box.json: everything a page needs for
// new Bugout(room, {announce, iceServers}) in one call.
type boxJSON struct {
	Announce   []string             `json:"announce"`
	IceServers []stunturn.ICEServer `json:"iceServers"`
	TTL        int64                `json:"ttl,omitempty"` // seconds the TURN credentials last; fetch again before
}

// bufferedResponse captures what the /ice handler writes, so /box.json
// reuses its credentials and CORS decisions instead of repeating them.
type bufferedResponse struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *bufferedResponse) Header() http.Header         { return r.h }
func (r *bufferedResponse) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *bufferedResponse) WriteHeader(code int)        { r.code = code }

func (b *box) mountPageConfig(mux *http.ServeMux) {
	mux.HandleFunc("/box.json", b.serveBoxJSON)
	mux.HandleFunc("GET /bugout.js", b.serveBugoutJS)
}

// serveBoxJSON answers like /ice (same CORS, fresh credentials) with the
// announce URLs added.
func (b *box) serveBoxJSON(w http.ResponseWriter, r *http.Request) {
	out := boxJSON{Announce: b.pageURLs(r).Announce, IceServers: []stunturn.ICEServer{}}
	if b.ice == nil {
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			w.Header().Add("Vary", "Origin")
			if allow := list(b.cfg.ICEAllowOrigins); slices.Contains(allow, "*") || slices.Contains(allow, origin) {
				w.Header().Set("Access-Control-Allow-Origin", origin)
			}
		}
		writeJSON(w, out)
		return
	}
	rec := &bufferedResponse{h: http.Header{}, code: http.StatusOK}
	b.ice.ServeHTTP(rec, r)
	for k, v := range rec.h {
		w.Header()[k] = v
	}
	if rec.code != http.StatusOK {
		w.WriteHeader(rec.code)
		w.Write(rec.body.Bytes())
		return
	}
	var ice stunturn.ICEResponse
	if err := json.Unmarshal(rec.body.Bytes(), &ice); err != nil {
		b.log.Error("box.json: decode /ice", "err", err)
		http.Error(w, "ice unavailable", http.StatusInternalServerError)
		return
	}
	out.IceServers, out.TTL = ice.IceServers, ice.TTL
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// serveBugoutJS is a script for pages: it defines BoxSignal.announce and
// BoxSignal.options(extra), a promise of {announce, iceServers, ...extra}
// fetched from /box.json, for new Bugout(room, opts).
func (b *box) serveBugoutJS(w http.ResponseWriter, r *http.Request) {
	u := b.pageURLs(r)
	announce, _ := json.Marshal(u.Announce)
	boxURL, _ := json.Marshal(u.BoxJSON)
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	fmt.Fprintf(w, `// Box Signal: this Box's tracker and ICE servers for Bugout and WebTorrent pages.
//   <script src="%[3]s"></script>
//   const bugout = new Bugout("my-room", await BoxSignal.options())
// options() fetches fresh TURN credentials from /box.json each call.
(function (g) {
  "use strict";
  var announce = %[1]s;
  g.BoxSignal = {
    announce: announce,
    url: %[2]s,
    options: function (extra) {
      return fetch(%[2]s, {credentials: "omit"})
        .then(function (r) { if (!r.ok) throw new Error("box.json: HTTP " + r.status); return r.json() })
        .then(function (j) { return Object.assign({announce: j.announce, iceServers: j.iceServers}, extra || {}) })
    }
  };
})(typeof globalThis !== "undefined" ? globalThis : window);
`, announce, boxURL, u.BugoutJS)
}
