package jwtauth

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func cacheKey(s string) *[sha256.Size]byte {
	k := sha256.Sum256([]byte(s))
	return &k
}

func TestTokenCache(t *testing.T) {
	c := newTokenCache(1600, time.Minute)
	id := &Identity{Subject: "alice"}
	k := cacheKey("token-a")

	c.put(k, id, t0.Add(time.Hour), t0, c.generation.Load())
	if got, ok := c.get(k, t0.Add(59*time.Second)); !ok || got != id {
		t.Fatal("fresh entry missed")
	}
	// The TTL ends the entry even if the token lives longer.
	if _, ok := c.get(k, t0.Add(time.Minute)); ok {
		t.Fatal("entry outlived the TTL")
	}
	// So does the token's own end, when it comes first.
	c.put(k, id, t0.Add(10*time.Second), t0, c.generation.Load())
	if _, ok := c.get(k, t0.Add(10*time.Second)); ok {
		t.Fatal("entry outlived the token")
	}
	// A key-set change empties the cache.
	c.put(k, id, t0.Add(time.Hour), t0, c.generation.Load())
	c.clear()
	if _, ok := c.get(k, t0); ok {
		t.Fatal("entry survived clear")
	}
	if _, ok := c.get(cacheKey("token-b"), t0); ok {
		t.Fatal("unknown token hit")
	}
	// A token verified while the keys changed is born stale.
	before := c.generation.Load()
	c.clear()
	c.put(k, id, t0.Add(time.Hour), t0, before)
	if _, ok := c.get(k, t0); ok {
		t.Fatal("an entry verified under the old keys was served after they changed")
	}
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(160, time.Hour)
	for i := 0; i < 10000; i++ {
		c.put(cacheKey(fmt.Sprint(i)), &Identity{}, t0.Add(time.Hour), t0, c.generation.Load())
	}
	if n := c.len(); n > 160 || n < 100 {
		t.Fatalf("%d entries held for a bound of 160", n)
	}
	// The newest entry is always kept.
	k := cacheKey("newest")
	c.put(k, &Identity{}, t0.Add(time.Hour), t0, c.generation.Load())
	if _, ok := c.get(k, t0); !ok {
		t.Fatal("newest entry evicted")
	}
}

// shardKey is the i-th key of shard 0.
func shardKey(i int) *[sha256.Size]byte {
	var k [sha256.Size]byte
	k[1], k[2] = byte(i), byte(i>>8)
	return &k
}

// held is what shard 0 holds: key → end of the entry.
func held(c *tokenCache) map[[sha256.Size]byte]time.Time {
	sh := &c.shards[0]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	out := map[[sha256.Size]byte]time.Time{}
	for i, e := range sh.entries {
		if sh.index[e.key] != i {
			panic("the index does not point at its entry")
		}
		out[e.key] = e.until
	}
	if len(out) != len(sh.index) {
		panic("the index holds keys the shard does not")
	}
	return out
}

// TestTokenCacheEvictsDeadFirst: a full shard drops its expired entries, and
// those of keys that changed, before it drops any live one.
func TestTokenCacheEvictsDeadFirst(t *testing.T) {
	c := newTokenCache(4*16, time.Hour) // 4 entries a shard
	gen := c.generation.Load()
	c.put(shardKey(0), &Identity{}, t0.Add(time.Second), t0, gen)
	c.put(shardKey(1), &Identity{}, t0.Add(time.Hour), t0, gen)
	c.put(shardKey(2), &Identity{}, t0.Add(2*time.Second), t0, gen)
	c.put(shardKey(3), &Identity{}, t0.Add(time.Hour), t0, gen)
	c.put(shardKey(4), &Identity{}, t0.Add(time.Hour), t0.Add(3*time.Second), gen)
	got := held(c)
	for i, want := range []bool{false, true, false, true, true} {
		if _, ok := got[*shardKey(i)]; ok != want {
			t.Errorf("after the put into the full shard, entry %d held: %v, want %v", i, ok, want)
		}
	}

	// After a key change every entry is dead: the next ones replace them
	// all, and no new one is lost.
	c.put(shardKey(5), &Identity{}, t0.Add(time.Hour), t0, gen)
	c.clear()
	gen = c.generation.Load()
	for i := 10; i < 14; i++ {
		c.put(shardKey(i), &Identity{}, t0.Add(time.Hour), t0, gen)
	}
	got = held(c)
	for i := 10; i < 14; i++ {
		if _, ok := got[*shardKey(i)]; !ok || len(got) != 4 {
			t.Errorf("after a key change: entry %d held %v, %d entries; want the 4 new ones", i, ok, len(got))
		}
	}
}

// TestTokenCacheEvictsAtRandom: when every entry is live, the victim is
// drawn at random: each position is chosen about as often.
func TestTokenCacheEvictsAtRandom(t *testing.T) {
	const trials, size = 800, 4
	victims := make([]int, size)
	for range trials {
		c := newTokenCache(size*16, time.Hour)
		for i := range size + 1 {
			c.put(shardKey(i), &Identity{}, t0.Add(time.Hour), t0, 0)
		}
		got := held(c)
		if len(got) != size {
			t.Fatalf("%d entries held, want %d", len(got), size)
		}
		if _, ok := got[*shardKey(size)]; !ok {
			t.Fatal("the new entry was evicted")
		}
		for i := range size {
			if _, ok := got[*shardKey(i)]; !ok {
				victims[i]++
			}
		}
	}
	// Each expects 200 (sd 12): 100 would be 8 sd off.
	for i, n := range victims {
		if n < 100 || n > 300 {
			t.Errorf("entry %d evicted %d times in %d, want about %d: %v", i, n, trials, trials/size, victims)
		}
	}
}

// TestTokenCacheEvictionModel runs puts with assorted ends on a moving clock
// against the rule: a full shard loses exactly its dead entries if it has
// any, otherwise one live entry; and no dead entry survives a sweep.
func TestTokenCacheEvictionModel(t *testing.T) {
	const size = 8
	c := newTokenCache(size*16, time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	for i := range 3000 {
		now = now.Add(time.Duration(rng.IntN(500)) * time.Millisecond)
		if rng.IntN(200) == 0 {
			c.clear()
		}
		gen := c.generation.Load()
		before := held(c)
		dead := map[[sha256.Size]byte]bool{}
		sh := &c.shards[0]
		for _, e := range sh.entries {
			if e.generation != gen || !now.Before(e.until) {
				dead[e.key] = true
			}
		}
		c.put(shardKey(i), &Identity{}, now.Add(time.Duration(rng.IntN(10000))*time.Millisecond), now, gen)
		after := held(c)
		var lost []bool // whether each lost entry was dead
		for k := range before {
			if _, ok := after[k]; !ok {
				lost = append(lost, dead[k])
			}
		}
		switch {
		case len(before) < size:
			if len(lost) != 0 {
				t.Fatalf("put %d: a shard with room lost %d entries", i, len(lost))
			}
		case len(dead) > 0:
			if len(lost) != len(dead) || slices.Contains(lost, false) {
				t.Fatalf("put %d: a full shard with %d dead entries lost %v (true: dead)", i, len(dead), lost)
			}
		default:
			if len(lost) != 1 {
				t.Fatalf("put %d: a full shard of live entries lost %d", i, len(lost))
			}
		}
		if _, ok := after[*shardKey(i)]; !ok || len(after) > size {
			t.Fatalf("put %d: new entry held %v, %d entries", i, ok, len(after))
		}
	}
}

// TestVerifierCacheHonoursClock: a cached token is refused once it expires,
// and before its nbf, whatever the cache holds.
func TestVerifierCacheHonoursClock(t *testing.T) {
	v := testVerifier(t, func(c *Config) { c.Leeway = durationPtr(0) })
	now := testNow()
	claims := claimsFor("cached")
	claims["exp"] = now.Add(time.Minute).Unix()
	tok := sign(t, "HS256", claims)
	if _, p := verifyToken(v, tok); p != nil {
		t.Fatal(p)
	}
	if v.cache.len() != 1 {
		t.Fatalf("token not cached: %d entries", v.cache.len())
	}
	if _, p := verifyToken(v, tok); p != nil {
		t.Fatalf("cache hit refused: %v", p)
	}
	// Put an entry that outlives the token, then move past exp.
	id, _ := verifyToken(v, tok)
	v.cache.put(cacheKey(tok), id, now.Add(time.Hour), now, v.cache.generation.Load())
	advanceClock(t, 2*time.Minute)
	if _, p := verifyToken(v, tok); p == nil || p.Detail != "the token has expired" {
		t.Fatalf("expired cached token: %v", p)
	}

	early := claimsFor("cached")
	early["nbf"] = now.Add(5 * time.Minute).Unix()
	earlyTok := sign(t, "HS256", early)
	// The identity as a verified token would have it (numbers from JSON).
	var parsed jwt.MapClaims
	raw, _ := json.Marshal(early)
	json.Unmarshal(raw, &parsed)
	earlyID := newIdentity(parsed)
	earlyID.provider = v.providers[0]
	v.cache.put(cacheKey(earlyTok), earlyID, now.Add(time.Hour), now, v.cache.generation.Load())
	if _, p := verifyToken(v, earlyTok); p == nil || p.Detail != "the token is not valid yet" {
		t.Fatalf("cached token before its nbf: %v", p)
	}
}
