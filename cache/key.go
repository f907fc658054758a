package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// Key accumulates the fields of a cache key. Every field is written with its
// length first, so ("ab","c") and ("a","bc") never collide.
type Key struct{ h hash.Hash }

// NewKey starts a key of the given kind (e.g. "run", "copy", "from").
func NewKey(kind string) *Key {
	k := &Key{h: sha256.New()}
	k.Add("strata.cache.v1", kind)
	return k
}

// Add appends fields to the key.
func (k *Key) Add(fields ...string) *Key {
	var n [8]byte
	for _, f := range fields {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		k.h.Write(n[:])
		k.h.Write([]byte(f))
	}
	return k
}

// AddList appends a list as one field: its length, then each element.
func (k *Key) AddList(list []string) *Key {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(list)))
	k.h.Write(n[:])
	return k.Add(list...)
}

// Sum returns the key as hex.
func (k *Key) Sum() string { return hex.EncodeToString(k.h.Sum(nil)) }
