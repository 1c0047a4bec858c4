package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxsignal/boxsignal/bugout"
)

// seedFile holds the identity as a Bugout seed string, mode 0600.
const seedFile = "seed"

// runID prints this peer's address, creating the identity on first use.
func runID(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, o := newFlags("id", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: peer id [flags]\n\nCreates the identity in -data on first use and prints its address.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: peer id takes no arguments", errUsage)
	}
	id, created, err := loadIdentity(o.dataDir)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stderr, "created a new identity in %s\n", filepath.Join(o.dataDir, seedFile))
	}
	fmt.Fprintln(stdout, id.Address())
	return nil
}

// loadIdentity reads dir/seed, or makes a new identity and writes it there
// (directory 0700, file 0600, synced) when there is none.
func loadIdentity(dir string) (id *bugout.Identity, created bool, err error) {
	if id, err := readIdentity(dir); err != nil || id != nil {
		return id, false, err
	}
	path := filepath.Join(dir, seedFile)
	id, err = bugout.NewIdentity(nil)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data dir: %w", err)
	}
	// O_EXCL: two first runs at once must not give two identities.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadIdentity(dir)
	}
	if err != nil {
		return nil, false, fmt.Errorf("write identity: %w", err)
	}
	_, err = fmt.Fprintln(f, id.Seed())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("write identity: %w", err)
	}
	return id, true, nil
}

// readIdentity reads dir/seed; nil without error when there is none.
func readIdentity(dir string) (*bugout.Identity, error) {
	path := filepath.Join(dir, seedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	id, err := bugout.ParseSeed(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("read identity %s: %w", path, err)
	}
	return id, nil
}
