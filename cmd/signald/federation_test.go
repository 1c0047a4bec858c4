package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func runCmd(t *testing.T, args ...string) (rc int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuf
	rc = run(context.Background(), args, func(string) string { return "" }, nil, nil, &out, &errb)
	return rc, out.String(), errb.String()
}

func TestIDCommand(t *testing.T) {
	dir := t.TempDir()
	rc, out, errs := runCmd(t, "id", "-data-dir", dir)
	if rc != 0 || !strings.HasPrefix(out, "12D3KooW") {
		t.Fatalf("signald id: rc %d, out %q, err %q", rc, out, errs)
	}
	fi, err := os.Stat(filepath.Join(dir, "p2p.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	if _, again, _ := runCmd(t, "id", "-data-dir", dir); again != out {
		t.Fatalf("identity changed between runs: %q then %q", out, again)
	}
	os.Chmod(filepath.Join(dir, "p2p.key"), 0o644)
	if rc, _, errs := runCmd(t, "id", "-data-dir", dir); rc == 0 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("a key readable by others: rc %d, %q", rc, errs)
	}
}

func TestFriendCommands(t *testing.T) {
	dir := t.TempDir()
	_, id, _ := runCmd(t, "id", "-data-dir", t.TempDir())
	id = strings.TrimSpace(id)
	if rc, _, errs := runCmd(t, "friend", "add", id, "bob-pi", "/ip4/127.0.0.1/tcp/4001", "rate=10", "-data-dir", dir); rc != 0 {
		t.Fatalf("add: %d %s", rc, errs)
	}
	if rc, _, errs := runCmd(t, "friend", "add", id, "again", "-data-dir", dir); rc == 0 || !strings.Contains(errs, "already") {
		t.Fatalf("second add of the same ID: rc %d, %q", rc, errs)
	}
	if rc, _, errs := runCmd(t, "friend", "add", "12D3KooWnotanid", "x", "-data-dir", dir); rc != 2 || !strings.Contains(errs, "peer ID") {
		t.Fatalf("bad ID: rc %d, %q", rc, errs)
	}
	_, list, _ := runCmd(t, "friend", "list", "-data-dir", dir)
	if want := id + " bob-pi addrs=/ip4/127.0.0.1/tcp/4001 rate=10\n"; list != want {
		t.Fatalf("list = %q, want %q", list, want)
	}
	if rc, _, _ := runCmd(t, "friend", "remove", "bob-pi", "-data-dir", dir); rc != 0 {
		t.Fatal("remove failed")
	}
	if _, list, _ := runCmd(t, "friend", "list", "-data-dir", dir); list != "" {
		t.Fatalf("after remove: %q", list)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "friends"))
	if !strings.HasPrefix(string(b), "# Friends of this Box") {
		t.Fatalf("the file's comments were lost: %q", b)
	}
}

var fedLine = regexp.MustCompile(`Federation: peer ID (\S+) on \[([^\]\s]+)`)

// Two signald processes' worth of Boxes, in process, befriended through
// their friends files: a browser on each meets the other. The second Box
// starts without friends and federates after a SIGHUP.
func TestTwoBoxesFederate(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	_, idA, _ := runCmd(t, "id", "-data-dir", dirA)
	_, idB, _ := runCmd(t, "id", "-data-dir", dirB)
	idA, idB = strings.TrimSpace(idA), strings.TrimSpace(idB)
	runCmd(t, "friend", "add", idB, "bob", "-data-dir", dirA)

	p2p := []string{"-p2p-listen", "/ip4/127.0.0.1/tcp/0", "-p2p-port-map=false", "-dht=false"}
	a := start(t, append([]string{"-data-dir", dirA}, p2p...)...)
	m := fedLine.FindStringSubmatch(a.out.String())
	if m == nil || m[1] != idA {
		t.Fatalf("box A did not start federation:\n%s", a.out.String())
	}
	b := start(t, append([]string{"-data-dir", dirB}, p2p...)...)
	if !strings.Contains(b.out.String(), "Federation: peer ID "+idB+", off until") {
		t.Fatal("a Box without friends started federation")
	}
	if rc, _, errs := runCmd(t, "friend", "add", idA, "alice", m[2], "-data-dir", dirB); rc != 0 {
		t.Fatalf("friend add: %s", errs)
	}
	b.hup <- syscall.SIGHUP
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.logs.String(), "friend connected") || !strings.Contains(a.logs.String(), "friend connected") {
		if time.Now().After(deadline) {
			t.Fatalf("friends did not connect; A:\n%s\nB:\n%s", a.logs.String(), b.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The admin view names the friend and its state.
	token, _ := os.ReadFile(filepath.Join(dirA, "admin-token"))
	req, _ := http.NewRequest("GET", "http://"+a.addr+"/admin/config.json", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		Friends []struct {
			Name      string
			Connected bool
		}
		DHT struct{ PeerID string }
	}
	json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if len(view.Friends) != 1 || view.Friends[0].Name != "bob" || !view.Friends[0].Connected || view.DHT.PeerID != idA {
		t.Fatalf("admin view %+v", view)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wsA, _, err := websocket.Dial(ctx, "ws://"+a.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wsA.CloseNow()
	wsB, _, err := websocket.Dial(ctx, "ws://"+b.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wsB.CloseNow()
	send := func(ws *websocket.Conn, s string) {
		if err := ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	next := func(ws *websocket.Conn, key string) map[string]any {
		for {
			_, raw, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v", key, err)
			}
			var m map[string]any
			json.Unmarshal(raw, &m)
			if m[key] != nil {
				return m
			}
		}
	}
	const ih = "federated-room-00001"
	send(wsB, `{"action":"announce","info_hash":"`+ih+`","peer_id":"-WW0109-yyyyyyyyyyyy","event":"started","left":1,"numwant":5,"offers":[]}`)
	next(wsB, "interval")
	// A learns B's room within a tick or two; re-announce until an offer
	// crosses, as a browser would at its next interval.
	var offer map[string]any
	got := make(chan map[string]any, 1)
	go func() {
		for {
			_, raw, err := wsB.Read(ctx)
			if err != nil {
				close(got)
				return
			}
			var m map[string]any
			json.Unmarshal(raw, &m)
			if m["offer"] != nil {
				got <- m
				return
			}
		}
	}()
	for i := 0; offer == nil; i++ {
		send(wsA, `{"action":"announce","info_hash":"`+ih+`","peer_id":"-WW0109-xxxxxxxxxxxx","left":1,"numwant":5,"offers":[{"offer_id":"offer-id-0000000000`+string(rune('a'+i%26))+`","offer":{"type":"offer","sdp":"v=0"}}]}`)
		select {
		case offer = <-got:
		case <-time.After(300 * time.Millisecond):
			if i > 50 {
				t.Fatal("no offer crossed the federation")
			}
		}
	}
	if offer["peer_id"] != "-WW0109-xxxxxxxxxxxx" {
		t.Fatalf("offer %v", offer)
	}
	send(wsB, `{"action":"announce","info_hash":"`+ih+`","peer_id":"-WW0109-yyyyyyyyyyyy","to_peer_id":"-WW0109-xxxxxxxxxxxx","offer_id":"`+offer["offer_id"].(string)+`","answer":{"type":"answer","sdp":"v=0 answer"}}`)
	ans := next(wsA, "answer")
	if ans["peer_id"] != "-WW0109-yyyyyyyyyyyy" {
		t.Fatalf("answer %v", ans)
	}
}
