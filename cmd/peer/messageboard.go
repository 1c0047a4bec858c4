package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"time"
	"unicode/utf16"

	"github.com/boxsignal/boxsignal/bugout"
)

// maxPostUnits is the original's limit: message.length < 280, in UTF-16
// code units as JavaScript counts them.
const maxPostUnits = 280

// runMessageboard serves the API of Bugout's messageboard-server.html
// (docs/examples, bugout@0.0.13) in this identity's own room:
//
//	ping(args)  args with pong: a random number
//	post(text)  a string shorter than 280 characters: stored, true, and a
//	            "refresh" broadcast; anything else: false (sent as {}, §RPC)
//	list()      the kept posts, newest first: [{address, m, t}, …]
//
// Posts live in a bbolt file in the data dir, synced before post answers,
// so an acknowledged post survives a restart or kill -9.
func runMessageboard(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, o := newFlags("messageboard", stderr)
	keep := fs.Int("keep", 10, "posts kept, the newest; 0 keeps all (the original keeps 10)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: peer messageboard [flags]\n\nServes Bugout's messageboard demo API (ping, post, list) at this identity's address.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *keep < 0 {
		return fmt.Errorf("%w: peer messageboard [flags], -keep ≥ 0", errUsage)
	}
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	id, _, err := loadIdentity(o.dataDir)
	if err != nil {
		return err
	}
	b, err := openBoard(filepath.Join(o.dataDir, "messageboard.db"), *keep)
	if err != nil {
		return err
	}
	defer b.close()

	p, leave, err := o.join(ctx, id, "", log)
	if err != nil {
		return err
	}
	defer leave()
	register(p, b, log)
	fmt.Fprintf(stdout, "address: %s\n", p.Address())
	n, _ := b.count()
	fmt.Fprintf(stdout, "ready: %d posts\n", n)

	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-p.Events():
			if !ok {
				return nil
			}
			switch e.Type {
			case bugout.EventSeen, bugout.EventLeft:
				log.Info(string(e.Type), "address", e.Address)
			case bugout.EventRPC:
				log.Info("rpc", "address", e.Address, "call", e.Call)
			}
		}
	}
}

// register installs ping, post and list on p.
func register(p *bugout.Peer, b *board, log *slog.Logger) {
	p.Register("ping", "Respond to ping with the args and a random pong.", func(_ context.Context, _ bugout.Address, args json.RawMessage) (json.RawMessage, error) {
		obj := map[string]any{}
		if err := json.Unmarshal(args, &obj); err != nil || obj == nil {
			obj = map[string]any{}
		}
		obj["pong"] = rand.Float64()
		return json.Marshal(obj)
	})
	p.Register("post", "Post a message to the board", func(_ context.Context, caller bugout.Address, args json.RawMessage) (json.RawMessage, error) {
		var m string
		if json.Unmarshal(args, &m) != nil || len(utf16.Encode([]rune(m))) >= maxPostUnits {
			return json.RawMessage("false"), nil
		}
		if err := b.add(post{Address: string(caller), M: m, T: time.Now().UnixMilli()}); err != nil {
			log.Error("store post", "err", err)
			return nil, fmt.Errorf("not stored")
		}
		if err := p.Send("refresh"); err != nil {
			log.Warn("broadcast refresh", "err", err)
		}
		return json.RawMessage("true"), nil
	})
	p.Register("list", "List most recent messages", func(context.Context, bugout.Address, json.RawMessage) (json.RawMessage, error) {
		posts, err := b.list()
		if err != nil {
			return nil, err
		}
		return json.Marshal(posts)
	})
}
