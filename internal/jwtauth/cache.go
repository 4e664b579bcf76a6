package jwtauth

import (
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache remembers tokens that verified, so a token seen again skips the
// signature check. It is keyed by the SHA-256 of the token, bounded in
// entries, and emptied when a key set changes. An entry lives until the
// earlier of the token's expiry and the TTL; a hit still checks exp and nbf
// against the clock. A full shard first drops its dead entries (expired, or
// of keys that changed since), and only if none is dead a random live one.
type tokenCache struct {
	ttl        time.Duration
	perShard   int
	generation atomic.Uint64
	shards     [16]cacheShard
}

// cacheShard holds its entries in a slice, so that a victim can be drawn at
// random, and indexes them by key.
type cacheShard struct {
	mu      sync.RWMutex
	index   map[[sha256.Size]byte]int // position in entries
	entries []cacheEntry
	// Nothing in entries ends before earliest, and nothing is older than
	// swept, the cache generation of the last sweep: until then or until
	// the cache is cleared, a sweep would find nothing.
	earliest time.Time
	swept    uint64
}

type cacheEntry struct {
	key        [sha256.Size]byte
	id         *Identity
	until      time.Time
	generation uint64
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	c := &tokenCache{ttl: ttl, perShard: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].index = make(map[[sha256.Size]byte]int)
	}
	return c
}

func (c *tokenCache) shard(key *[sha256.Size]byte) *cacheShard {
	return &c.shards[key[0]%byte(len(c.shards))]
}

// get returns the identity of a cached token still within its entry's life.
func (c *tokenCache) get(key *[sha256.Size]byte, now time.Time) (*Identity, bool) {
	sh := c.shard(key)
	sh.mu.RLock()
	var e cacheEntry
	i, ok := sh.index[*key]
	if ok {
		e = sh.entries[i]
	}
	sh.mu.RUnlock()
	if !ok || e.generation != c.generation.Load() || !now.Before(e.until) {
		return nil, false
	}
	return e.id, true
}

// put caches a verified token until min(notAfter, now+ttl). generation is
// the cache's generation read before the token was verified: if the keys
// changed meanwhile, the entry would be born stale, and is not kept.
func (c *tokenCache) put(key *[sha256.Size]byte, id *Identity, notAfter, now time.Time, generation uint64) {
	current := c.generation.Load()
	if generation != current {
		return
	}
	until := now.Add(c.ttl)
	if notAfter.Before(until) {
		until = notAfter
	}
	e := cacheEntry{key: *key, id: id, until: until, generation: generation}
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.index[*key]; ok {
		sh.entries[i] = e
		sh.earliest = minTime(sh.earliest, until)
		return
	}
	if len(sh.entries) >= c.perShard {
		sh.sweep(now, current)
	}
	if len(sh.entries) >= c.perShard {
		sh.remove(rand.IntN(len(sh.entries)))
	}
	if len(sh.entries) == 0 {
		sh.earliest = until
	}
	sh.index[*key] = len(sh.entries)
	sh.entries = append(sh.entries, e)
	sh.earliest = minTime(sh.earliest, until)
}

// sweep drops the entries that can no longer be served: past their end, or
// cached under keys that have changed since. It skips the scan when nothing
// can have ended since the last one.
func (sh *cacheShard) sweep(now time.Time, generation uint64) {
	if now.Before(sh.earliest) && sh.swept == generation {
		return
	}
	earliest := time.Time{}
	for i := 0; i < len(sh.entries); {
		e := &sh.entries[i]
		if e.generation != generation || !now.Before(e.until) {
			sh.remove(i) // brings the last entry to i
			continue
		}
		if earliest.IsZero() || e.until.Before(earliest) {
			earliest = e.until
		}
		i++
	}
	sh.earliest, sh.swept = earliest, generation
}

// remove drops the entry at i, moving the last entry into its place.
func (sh *cacheShard) remove(i int) {
	last := len(sh.entries) - 1
	delete(sh.index, sh.entries[i].key)
	if i != last {
		sh.entries[i] = sh.entries[last]
		sh.index[sh.entries[i].key] = i
	}
	sh.entries[last] = cacheEntry{}
	sh.entries = sh.entries[:last]
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// clear drops every entry at once: entries of an older generation miss, and
// are the first to go when their shard is full.
func (c *tokenCache) clear() {
	c.generation.Add(1)
}

// len counts the entries held, live or not.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].entries)
		c.shards[i].mu.RUnlock()
	}
	return n
}
