package memory

import (
	"encoding/base64"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// FuzzIDKey: an id keyed by its bytes is the one spelling of them,
// and no id panics any operation.
func FuzzIDKey(f *testing.F) {
	for _, s := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAA\n\nAA", "", "a", "AAAAAAAAAAAAAAAAAAAAA="} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, kb := idKeyOf(a), idKeyOf(b)
		if !ka.hashed && base64.RawURLEncoding.EncodeToString(ka.id[:]) != a {
			t.Fatalf("%q keyed by bytes that spell %q", a, base64.RawURLEncoding.EncodeToString(ka.id[:]))
		}
		if a != b && ka == kb {
			t.Fatalf("%q and %q share a key", a, b)
		}
		tbl := newSessionTable()
		o := store.Owner{Subject: b}
		s := store.Session{ID: a, LastActive: t0, Timeout: time.Hour}
		if _, err := tbl.create(o, s, 10, tableLimits{10, 1 << 40}, t0); err != nil {
			t.Fatal(err)
		}
		if _, err := tbl.get(o, b, t0); (err == nil) != (a == b) {
			t.Fatalf("get %q after create %q: %v", b, a, err)
		}
		if _, err := tbl.get(store.Owner{Subject: a}, a, t0); (err == nil) != (a == b) {
			t.Fatalf("other owner: %v", err)
		}
		tbl.update(o, b, nil, nil, 1<<40, t0)
		tbl.remove(o, b, nil, t0)
		tbl.removeAll(o, b, t0)
		tbl.sweep(t0.Add(2 * time.Hour))
		if tbl.live.Load() != 0 || tbl.bytes.Load() != 0 {
			t.Fatal("accounting")
		}
	})
}

// TestRawIDKeysInjective: changing any one character of an id of NewID's
// form, to any byte, changes its key (ids from a seeded source).
func TestRawIDKeysInjective(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 16))
	for range 60 {
		var raw [16]byte
		for i := range raw {
			raw[i] = byte(rng.Uint32())
		}
		id := base64.RawURLEncoding.EncodeToString(raw[:])
		k := idKeyOf(id)
		if k.hashed || k.id != raw {
			t.Fatalf("%q: keyed %+v", id, k)
		}
		b := []byte(id)
		for p := range b {
			orig := b[p]
			for c := range 256 {
				if byte(c) == orig {
					continue
				}
				b[p] = byte(c)
				if k2 := idKeyOf(string(b)); k2 == k {
					t.Fatalf("%q and %q share a key", id, b)
				}
			}
			b[p] = orig
		}
	}
}
