package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestBoardKeepsNewestAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mb.db")
	b, err := openBoard(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := b.add(post{Address: "a", M: fmt.Sprint(i), T: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	b.close()
	b, err = openBoard(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	got, err := b.list()
	if err != nil {
		t.Fatal(err)
	}
	var ms []string
	for _, p := range got {
		ms = append(ms, p.M)
	}
	if fmt.Sprint(ms) != "[4 3 2]" {
		t.Errorf("list after reopen = %v, want [4 3 2] (newest first, 3 kept)", ms)
	}
	if n, _ := b.count(); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
}

func TestLoadIdentityCreatesOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, created, err := loadIdentity(dir)
	if err != nil || !created {
		t.Fatalf("loadIdentity = %v, created %v", err, created)
	}
	b, created, err := loadIdentity(dir)
	if err != nil || created || a.Address() != b.Address() {
		t.Fatalf("second loadIdentity = %v, %v, created %v; want %v", b, err, created, a)
	}
	fi, err := os.Stat(filepath.Join(dir, seedFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("seed file mode %v, err %v; want 0600", fi.Mode().Perm(), err)
	}
}
