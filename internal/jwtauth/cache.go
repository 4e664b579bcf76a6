package jwtauth

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// tokenCache remembers tokens that verified, so a token seen again skips the
// signature check. It is keyed by the SHA-256 of the token, bounded in
// entries (a full shard drops an arbitrary entry), and emptied when a key
// set changes. An entry lives until the earlier of the token's expiry and
// the TTL; a hit still checks exp and nbf against the clock.
type tokenCache struct {
	ttl        time.Duration
	perShard   int
	generation atomic.Uint64
	shards     [16]cacheShard
}

type cacheShard struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	id         *Identity
	until      time.Time
	generation uint64
}

func newTokenCache(size int, ttl time.Duration) *tokenCache {
	c := &tokenCache{ttl: ttl, perShard: max(1, size/16)}
	for i := range c.shards {
		c.shards[i].entries = make(map[[sha256.Size]byte]cacheEntry)
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
	e, ok := sh.entries[*key]
	sh.mu.RUnlock()
	if !ok || e.generation != c.generation.Load() || !now.Before(e.until) {
		return nil, false
	}
	return e.id, true
}

// put caches a verified token until min(notAfter, now+ttl). generation is
// the cache's generation read before the token was verified: if the keys
// changed meanwhile, the entry is born stale.
func (c *tokenCache) put(key *[sha256.Size]byte, id *Identity, notAfter, now time.Time, generation uint64) {
	until := now.Add(c.ttl)
	if notAfter.Before(until) {
		until = notAfter
	}
	sh := c.shard(key)
	sh.mu.Lock()
	if len(sh.entries) >= c.perShard {
		for k := range sh.entries { // map order is random: an arbitrary victim
			delete(sh.entries, k)
			break
		}
	}
	sh.entries[*key] = cacheEntry{id: id, until: until, generation: generation}
	sh.mu.Unlock()
}

// clear drops every entry at once: entries of an older generation miss.
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
