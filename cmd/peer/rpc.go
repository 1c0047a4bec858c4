package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/boxsignal/boxsignal/bugout"
)

// runRPC joins ADDRESS's room, waits for that server, calls CALL with the
// JSON args and prints the result.
func runRPC(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, o := newFlags("rpc", stderr)
	timeout := fs.Duration("timeout", 60*time.Second, "give up if the server is not found and answered by then")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: peer rpc [flags] ADDRESS CALL [JSON]\n\nJoins the room of the Bugout server ADDRESS, calls CALL with the JSON args (default null)\nand prints the result. Uses the identity in -data if there is one, else a fresh one.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 2 || fs.NArg() > 3 {
		return fmt.Errorf("%w: peer rpc ADDRESS CALL [JSON]", errUsage)
	}
	server, call := bugout.Address(fs.Arg(0)), fs.Arg(1)
	callArgs := json.RawMessage("null")
	if fs.NArg() == 3 {
		callArgs = json.RawMessage(fs.Arg(2))
		if !json.Valid(callArgs) {
			return fmt.Errorf("%w: args %q are not JSON", errUsage, fs.Arg(2))
		}
	}
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	id, err := existingIdentity(o.dataDir)
	if err != nil {
		return err
	}
	if id.Address() == server {
		return fmt.Errorf("%w: ADDRESS is this peer's own; use another -data", errUsage)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	p, leave, err := o.join(ctx, id, string(server), log)
	if err != nil {
		return err
	}
	defer leave()
	if err := awaitPeer(ctx, p, server); err != nil {
		return err
	}
	res, err := p.Call(ctx, server, call, callArgs)
	if err != nil {
		return fmt.Errorf("call %s: %w", call, err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n", res)
	return err
}

// awaitPeer waits until addr is in p's peer table.
func awaitPeer(ctx context.Context, p *bugout.Peer, addr bugout.Address) error {
	for {
		for _, pi := range p.Peers() {
			if pi.Address == addr {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server %s not found: %w", addr, ctx.Err())
		case _, ok := <-p.Events():
			if !ok {
				return fmt.Errorf("server %s not found: peer closed", addr)
			}
		}
	}
}

// existingIdentity is the identity in dir, or a fresh one (not saved).
func existingIdentity(dir string) (*bugout.Identity, error) {
	id, err := readIdentity(dir)
	if err != nil || id != nil {
		return id, err
	}
	return bugout.NewIdentity(nil)
}
