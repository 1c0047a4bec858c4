package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// iceSource is the ICE server list: the configured servers plus, with an
// ICEURL, the Box's, refetched once half their ttl has passed.
type iceSource struct {
	static []ICEServer
	url    string
	client *http.Client

	mu      sync.Mutex
	fetched []ICEServer
	fresh   time.Time // refetch after this
}

// iceResponse is the body of a Box's GET /ice.
type iceResponse struct {
	IceServers []struct {
		URLs       json.RawMessage `json:"urls"` // a string or a list, as in browsers
		Username   string          `json:"username"`
		Credential string          `json:"credential"`
	} `json:"iceServers"`
	TTL int64 `json:"ttl"`
}

// servers returns the list for a new PeerConnection. A failed fetch keeps
// the last list and reports the error.
func (s *iceSource) servers(ctx context.Context) ([]webrtc.ICEServer, error) {
	var err error
	all := s.static
	if s.url != "" {
		s.mu.Lock()
		if time.Now().After(s.fresh) {
			var got []ICEServer
			var ttl time.Duration
			if got, ttl, err = s.fetch(ctx); err == nil {
				s.fetched, s.fresh = got, time.Now().Add(ttl/2)
			}
		}
		all = append(all[:len(all):len(all)], s.fetched...)
		s.mu.Unlock()
	}
	out := make([]webrtc.ICEServer, 0, len(all))
	for _, v := range all {
		out = append(out, webrtc.ICEServer{URLs: v.URLs, Username: v.Username, Credential: v.Credential})
	}
	return out, err
}

func (s *iceSource) fetch(ctx context.Context) ([]ICEServer, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch ice servers: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch ice servers: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetch ice servers from %s: %s", s.url, resp.Status)
	}
	var r iceResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&r); err != nil {
		return nil, 0, fmt.Errorf("decode ice servers from %s: %w", s.url, err)
	}
	var out []ICEServer
	for _, v := range r.IceServers {
		var urls []string
		if err := json.Unmarshal(v.URLs, &urls); err != nil {
			var one string
			if err := json.Unmarshal(v.URLs, &one); err != nil {
				return nil, 0, fmt.Errorf("decode ice servers from %s: urls %s", s.url, v.URLs)
			}
			urls = []string{one}
		}
		out = append(out, ICEServer{URLs: urls, Username: v.Username, Credential: v.Credential})
	}
	ttl := time.Duration(r.TTL) * time.Second
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	return out, ttl, nil
}
