package signal

import (
	"strings"
)

// Stats is a snapshot in the shape of bittorrent-tracker's /stats.json, for
// the tools that read it.
type Stats struct {
	Torrents              int                       `json:"torrents"`
	ActiveTorrents        int                       `json:"activeTorrents"`
	PeersAll              int                       `json:"peersAll"`
	PeersSeederOnly       int                       `json:"peersSeederOnly"`
	PeersLeecherOnly      int                       `json:"peersLeecherOnly"`
	PeersSeederAndLeecher int                       `json:"peersSeederAndLeecher"`
	PeersIPv4             int                       `json:"peersIPv4"`
	PeersIPv6             int                       `json:"peersIPv6"`
	Clients               map[string]map[string]int `json:"clients"`
	Connections           int                       `json:"connections"`
}

// Stats walks every swarm; it costs O(peers), so serve it to operators, not
// on every page view. As in bittorrent-tracker, a peer counts once however
// many swarms it is in, keyed by peer_id.
func (s *Server) Stats() Stats {
	type seen struct{ seeder, leecher bool }
	peers := map[[20]byte]*seen{}
	st := Stats{Clients: map[string]map[string]int{}}
	s.table.each(func(sw *swarm) {
		st.Torrents++
		if len(sw.list) > 0 {
			st.ActiveTorrents++
		}
		for _, p := range sw.list {
			e := peers[p.id]
			if e == nil {
				e = &seen{}
				peers[p.id] = e
				if c, ok := p.m.(*conn); ok {
					if c.ip.Is4() {
						st.PeersIPv4++
					} else if c.ip.Is6() {
						st.PeersIPv6++
					}
				}
				name, version := clientOf(p.id[:])
				if st.Clients[name] == nil {
					st.Clients[name] = map[string]int{}
				}
				st.Clients[name][version]++
			}
			if p.seeder {
				e.seeder = true
			} else {
				e.leecher = true
			}
		}
	})
	for _, e := range peers {
		st.PeersAll++
		switch {
		case e.seeder && e.leecher:
			st.PeersSeederAndLeecher++
		case e.seeder:
			st.PeersSeederOnly++
		default:
			st.PeersLeecherOnly++
		}
	}
	st.Connections = int(s.m.conns.Load())
	return st
}

// clientOf names the client of an Azureus-style peer_id ("-WW0109-…").
func clientOf(id []byte) (name, version string) {
	if len(id) < 8 || id[0] != '-' || id[7] != '-' {
		return "unknown", ""
	}
	code, v := string(id[1:3]), string(id[3:7])
	names := map[string]string{"WW": "WebTorrent", "WD": "WebTorrent Desktop", "GB": "Box Signal", "TR": "Transmission",
		"qB": "qBittorrent", "lt": "libtorrent", "LT": "libtorrent"}
	if n, ok := names[code]; ok {
		code = n
	}
	return code, strings.TrimLeft(v[:1], "0") + strings.Join(strings.Split(v[1:], ""), ".")
}
