package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// loadOrCreateToken returns the admin token stored at path, creating a
// random one (mode 0600) if the file does not exist; created says so, so
// the caller prints it once.
func loadOrCreateToken(path string) (token string, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		st, err := os.Stat(path)
		if err != nil {
			return "", false, fmt.Errorf("stat admin token: %w", err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return "", false, fmt.Errorf("admin token %s: mode %v, want 0600", path, st.Mode().Perm())
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return "", false, fmt.Errorf("admin token %s: %d characters, want at least 16", path, len(tok))
		}
		return tok, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	raw := make([]byte, 18)
	rand.Read(raw)
	tok := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("create admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateToken(path) // another signald made it meanwhile
	}
	if err != nil {
		return "", false, fmt.Errorf("create admin token: %w", err)
	}
	_, werr := f.WriteString(tok + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return tok, true, nil
}

// requireAdmin lets through requests that carry the admin token as
// "Authorization: Bearer <token>".
func (b *box) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || b.adminToken == "" || subtle.ConstantTimeCompare([]byte(got), []byte(b.adminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="signald admin"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	}
}

// adminOption is one row of the admin view of the configuration.
type adminOption struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
	Secret bool   `json:"secret,omitempty"`
	Help   string `json:"help"`
}

type adminView struct {
	Options  []adminOption `json:"options"`
	DataDir  string        `json:"dataDir"`
	Friends  []adminFriend `json:"friends"` // null: federation is not running
	DHT      *adminDHT     `json:"dht"`     // null: federation is not running
	TURNKeys int           `json:"turnSecrets"`
}

type adminFriend struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Connected bool   `json:"connected"`
}

type adminDHT struct {
	PeerID       string `json:"peerID"`
	Policy       string `json:"policy"`
	Enabled      bool   `json:"enabled"`
	RoutingTable int    `json:"routingTable"`
}

// serveAdminConfig shows the effective configuration, secrets included.
func (b *box) serveAdminConfig(w http.ResponseWriter, r *http.Request) {
	v := adminView{DataDir: b.dataDir, TURNKeys: b.turnSecrets}
	if n := b.federation(); n != nil {
		v.Friends = []adminFriend{}
		for _, f := range n.Friends() {
			v.Friends = append(v.Friends, adminFriend{Name: f.Name, ID: f.ID.String(), Connected: f.Connected})
		}
		v.DHT = &adminDHT{PeerID: n.ID().String(), Policy: b.cfg.DHTPolicy, Enabled: b.cfg.DHT, RoutingTable: n.RoutingTableSize()}
	}
	flagsOf(b.cfg).VisitAll(func(f *flag.Flag) {
		v.Options = append(v.Options, adminOption{Name: f.Name, Value: f.Value.String(), Source: b.src[f.Name],
			Secret: secretOptions[f.Name], Help: f.Usage})
	})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
