package stunturn

import (
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DefaultICETTL is how long credentials from the /ice handler last.
// Allocations end when their credential expires, so it bounds the longest
// relayed call; browsers do not fetch new credentials mid-call.
const DefaultICETTL = 12 * time.Hour

// ICEConfig configures NewICEHandler.
type ICEConfig struct {
	// URLs of this Box, e.g. "stun:box.example:3478",
	// "turn:box.example:3478?transport=udp",
	// "turn:box.example:3478?transport=tcp", "turns:box.example:5349".
	// stun: URLs are served without credentials, turn:/turns: URLs with.
	URLs []string
	// Secret signs the credentials: Config.Secrets[0] of the Server.
	Secret []byte
	// TTL of the credentials. Default DefaultICETTL.
	TTL time.Duration
	// AllowOrigins are the origins allowed to read the response from a
	// browser (CORS); "*" allows any. Default: none (same origin only).
	AllowOrigins []string
	// User names the user the credentials are issued to, which is the unit
	// of Config.UserQuota. Default: the client's IP address (IPv6: its
	// /64), taken from the connection, so one household shares a quota.
	// Set it when the daemon sits behind a reverse proxy.
	User func(*http.Request) string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEResponse is the body of a GET /ice response. Pass IceServers to
// new RTCPeerConnection({iceServers}); fetch again before TTL seconds pass.
type ICEResponse struct {
	IceServers []ICEServer `json:"iceServers"`
	TTL        int64       `json:"ttl"` // seconds the credentials stay valid
}

// NewICEHandler returns a handler that answers GET (and HEAD) with an
// ICEResponse carrying fresh credentials, and CORS preflights for
// AllowOrigins. It does not route: mount it at /ice. Safe for concurrent
// use.
func NewICEHandler(cfg ICEConfig) http.Handler {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultICETTL
	}
	if cfg.User == nil {
		cfg.User = clientIPUser
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &iceHandler{cfg: cfg}
	for _, u := range cfg.URLs {
		if strings.HasPrefix(u, "stun:") || strings.HasPrefix(u, "stuns:") {
			h.stun = append(h.stun, u)
		} else {
			h.turn = append(h.turn, u)
		}
	}
	return h
}

type iceHandler struct {
	cfg        ICEConfig
	stun, turn []string
}

func (h *iceHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	if origin := r.Header.Get("Origin"); origin != "" {
		hdr.Add("Vary", "Origin")
		switch {
		case slices.Contains(h.cfg.AllowOrigins, "*"):
			hdr.Set("Access-Control-Allow-Origin", "*")
		case slices.Contains(h.cfg.AllowOrigins, origin):
			hdr.Set("Access-Control-Allow-Origin", origin)
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		hdr.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		hdr.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		hdr.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	resp := ICEResponse{IceServers: []ICEServer{}, TTL: int64(h.cfg.TTL / time.Second)}
	if len(h.stun) > 0 {
		resp.IceServers = append(resp.IceServers, ICEServer{URLs: h.stun})
	}
	if len(h.turn) > 0 && len(h.cfg.Secret) > 0 {
		user, pass := NewCredentials(h.cfg.Secret, h.cfg.User(r), h.cfg.TTL, h.cfg.Now())
		resp.IceServers = append(resp.IceServers, ICEServer{URLs: h.turn, Username: user, Credential: pass})
	}
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store") // credentials are per request
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// clientIPUser names a user by the request's remote IP, IPv6 by its /64
// ("2001:db8:1:2::/64"). REST usernames split at the first colon, so the
// colons that follow are harmless.
func clientIPUser(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "anon"
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
