package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

func TestICEServesThisBoxWithFreshCredentials(t *testing.T) {
	d := start(t, "-ice-allow-origins", "https://app.example")
	req, _ := http.NewRequest("GET", "http://"+d.addr+"/ice", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("GET /ice: %s, CORS %q", resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	var ice struct {
		IceServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"iceServers"`
		TTL int `json:"ttl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ice); err != nil {
		t.Fatal(err)
	}
	if ice.TTL != 12*3600 {
		t.Errorf("ttl %d, want 43200", ice.TTL)
	}
	var stunURL string
	var turnCreds bool
	for _, s := range ice.IceServers {
		for _, u := range s.URLs {
			if !strings.Contains(u, "127.0.0.1:") {
				t.Errorf("URL %q is not this Box as the page reached it", u)
			}
			if strings.HasPrefix(u, "stun:") {
				stunURL = u
			}
			if strings.HasPrefix(u, "turn:") && s.Username != "" && s.Credential != "" {
				turnCreds = true
			}
		}
	}
	if stunURL == "" || !turnCreds {
		t.Fatalf("iceServers %+v: want a stun: URL and turn: URLs with credentials", ice.IceServers)
	}
	// The STUN URL answers a binding request with our mapped address.
	c, err := stun.Dial("udp4", strings.TrimPrefix(stunURL, "stun:"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mapped stun.XORMappedAddress
	done := make(chan error, 1)
	if err := c.Do(stun.MustBuild(stun.TransactionID, stun.BindingRequest), func(ev stun.Event) {
		if ev.Error != nil {
			done <- ev.Error
			return
		}
		done <- mapped.GetFrom(ev.Message)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil || !mapped.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Fatalf("binding: %v, mapped %v", err, mapped)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no STUN binding response")
	}
}

func TestTURNSecretGeneratedOnce(t *testing.T) {
	dir := t.TempDir()
	start(t, "-data-dir", dir).stop(t)
	file := filepath.Join(dir, "turn-secret")
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("secret mode %v, want 0600", st.Mode().Perm())
	}
	first, _ := os.ReadFile(file)
	start(t, "-data-dir", dir).stop(t)
	if again, _ := os.ReadFile(file); string(again) != string(first) {
		t.Fatal("secret changed across restarts")
	}
}
