package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// board is the messageboard's store: one bbolt bucket of posts keyed by a
// big-endian sequence number, so the cursor order is the posting order.
// bbolt syncs each commit, so a post that add returned is on disk.
type board struct {
	db   *bolt.DB
	keep int // newest posts kept; 0: all
}

// post is one message as the original stores it.
type post struct {
	Address string `json:"address"`
	M       string `json:"m"`
	T       int64  `json:"t"` // ms since the epoch
}

var postsBucket = []byte("posts")

func openBoard(path string, keep int) (*board, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(postsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &board{db: db, keep: keep}, nil
}

func (b *board) close() error { return b.db.Close() }

// add stores p and drops the oldest posts beyond keep, in one synced
// transaction.
func (b *board) add(p post) error {
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(postsBucket)
		seq, err := bk.NextSequence()
		if err != nil {
			return err
		}
		if err := bk.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		if b.keep == 0 {
			return nil
		}
		c := bk.Cursor()
		for n := keyCount(bk); n > b.keep; n-- {
			if k, _ := c.First(); k == nil {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// list returns the kept posts, newest first.
func (b *board) list() ([]post, error) {
	out := []post{}
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(postsBucket).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if b.keep > 0 && len(out) == b.keep {
				break
			}
			var p post
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("post %x: %w", k, err)
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

func (b *board) count() (int, error) {
	n := 0
	err := b.db.View(func(tx *bolt.Tx) error {
		n = keyCount(tx.Bucket(postsBucket))
		return nil
	})
	return n, err
}

// keyCount counts bk's keys; the board is small (keep) or rarely counted.
func keyCount(bk *bolt.Bucket) int {
	n := 0
	c := bk.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}
