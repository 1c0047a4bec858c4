// Command signald runs a Box: a WebTorrent-compatible WebSocket tracker that
// browsers running Bugout or WebTorrent apps use to find each other.
//
//	signald [-addr :8000] [-config signald.toml] [-tls-cert c.pem -tls-key k.pem] ...
//	signald check [options]         validate the configuration
//	signald config print [options]  the effective configuration and its sources
//
// Every flag can also be set in the TOML config file (same key) or by the
// environment (SIGNALD_ADDR, ...). SIGTERM or SIGINT drains: clients get a
// close frame and up to -drain-timeout to leave; a second signal exits at
// once. SIGHUP reloads the TLS certificate and the log level.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Environ(), hup, os.Stdout, os.Stderr))
}

// run is signald with its surroundings passed in, so tests run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, environ []string, hup <-chan os.Signal, stdout, stderr io.Writer) int {
	if rc, ok := command(args, getenv, environ, stdout, stderr); ok {
		return rc
	}
	cfg, src, err := loadConfig(args, getenv, environ)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "signald: %v\n", err)
		return 2
	}
	b, err := newBox(cfg, src, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "signald: %v\n", err)
		return 1
	}
	if err := b.serve(ctx, hup, stdout); err != nil {
		b.log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: signald [options]\n\n%s\nOptions (also TOML keys of -config, and SIGNALD_* environment variables):\n", usageCommands)
	fs := flags(new(config))
	fs.SetOutput(w)
	fs.PrintDefaults()
}
