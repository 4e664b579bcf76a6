package jwtauth

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
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
	v.cache.put(cacheKey(earlyTok), newIdentity(parsed), now.Add(time.Hour), now, v.cache.generation.Load())
	if _, p := verifyToken(v, earlyTok); p == nil || p.Detail != "the token is not valid yet" {
		t.Fatalf("cached token before its nbf: %v", p)
	}
}
