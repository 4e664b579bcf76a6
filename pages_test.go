package ownidsessions

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// TestCursorTamperEvident: every single-byte change of a cursor's content
// or signature is refused, as is the cursor for another owner or under
// another key.
func TestCursorTamperEvident(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	alice := Owner{App: "/a", Issuer: "https://i", Subject: "alice"}
	s := store.Session{ID: "0b9AqQ3xZ1lJv7yT2sK8dw", LastActive: t0}
	c := encodeCursor(key, alice, &s)
	got, ok := decodeCursor(key, alice, c)
	if !ok || got.ID != s.ID || !got.LastActive.Equal(s.LastActive) {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(c)
	for i := range raw {
		for _, bit := range []byte{1, 0x80} {
			b := append([]byte(nil), raw...)
			b[i] ^= bit
			if _, ok := decodeCursor(key, alice, base64.RawURLEncoding.EncodeToString(b)); ok {
				t.Fatalf("byte %d ^ %#x accepted", i, bit)
			}
		}
	}
	for _, o := range []Owner{
		{App: "/b", Issuer: "https://i", Subject: "alice"},
		{App: "/a", Issuer: "", Subject: "alice"},
		{App: "/a", Issuer: "https://i", Subject: "bob"},
		// Length-prefixed: moving bytes between the parts is another owner.
		{App: "/a", Issuer: "https://ia", Subject: "lice"},
	} {
		if _, ok := decodeCursor(key, o, c); ok {
			t.Errorf("cursor of alice accepted for %+v", o)
		}
	}
	if _, ok := decodeCursor([]byte("another key, also 32 bytes long!"), alice, c); ok {
		t.Error("cursor accepted under another key")
	}
	for _, bad := range []string{"", "AA", c + "A", c[:len(c)-1], "!!!!"} {
		if _, ok := decodeCursor(key, alice, bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPageOf(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// In the store's order: most recently active first, then by id.
	list := []store.Session{{ID: "e", LastActive: at(5)}, {ID: "c", LastActive: at(3)}, {ID: "d", LastActive: at(3)}, {ID: "a", LastActive: at(1)}}
	ids := func(ss []store.Session) (out string) {
		for _, s := range ss {
			out += s.ID
		}
		return out
	}
	for _, tt := range []struct {
		after *store.Session
		limit int
		want  string
		more  bool
	}{
		{nil, 0, "ecda", false},
		{nil, 2, "ec", true},
		{&list[1], 2, "da", false},
		{&list[1], 1, "d", true},
		{&store.Session{ID: "cc", LastActive: at(3)}, 0, "da", false}, // a deleted position
		{&store.Session{ID: "z", LastActive: at(9)}, 0, "ecda", false},
		{&list[3], 5, "", false},
	} {
		page, more := pageOf(list, tt.after, tt.limit)
		if ids(page) != tt.want || more != tt.more {
			t.Errorf("after %+v limit %d: %q %v, want %q %v", tt.after, tt.limit, ids(page), more, tt.want, tt.more)
		}
	}
}
