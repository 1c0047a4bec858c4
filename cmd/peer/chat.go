package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/boxsignal/boxsignal/bugout"
)

// runChat joins ROOM, broadcasts each stdin line and prints messages,
// arrivals and departures, until stdin ends or a signal comes.
func runChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, o := newFlags("chat", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: peer chat [flags] ROOM\n\nSends each line of stdin to ROOM as a Bugout message and prints what happens there.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return fmt.Errorf("%w: peer chat ROOM", errUsage)
	}
	room := fs.Arg(0)
	log, err := o.logger(stderr)
	if err != nil {
		return err
	}
	id, _, err := loadIdentity(o.dataDir)
	if err != nil {
		return err
	}
	p, leave, err := o.join(ctx, id, room, log)
	if err != nil {
		return err
	}
	defer leave()
	fmt.Fprintf(stdout, "* you are %s in %q\n", p.Address(), room)

	lines := make(chan string)
	go func() { // ends with stdin; the process exits soon after
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			if l == "" {
				continue
			}
			if err := p.Send(l); err != nil {
				fmt.Fprintf(stderr, "send: %v\n", err)
			}
		case e, ok := <-p.Events():
			if !ok {
				return nil
			}
			printEvent(stdout, e)
		}
	}
}

func printEvent(w io.Writer, e bugout.Event) {
	switch e.Type {
	case bugout.EventMessage:
		var s string
		text := string(e.Message)
		if json.Unmarshal(e.Message, &s) == nil {
			text = s
		}
		dm := ""
		if e.Encrypted {
			dm = " (direct)"
		}
		fmt.Fprintf(w, "<%s>%s %s\n", e.Address, dm, text)
	case bugout.EventSeen:
		fmt.Fprintf(w, "* seen %s\n", e.Address)
	case bugout.EventServer:
		fmt.Fprintf(w, "* %s is this room's server\n", e.Address)
	case bugout.EventLeft:
		fmt.Fprintf(w, "* left %s\n", e.Address)
	}
}
