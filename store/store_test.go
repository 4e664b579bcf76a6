package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	const urlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 22 || strings.Trim(id, urlSafe) != "" || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

func TestSessionExpired(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	s := Session{Created: at.Add(-time.Hour), LastActive: at, Timeout: time.Minute}
	for _, tt := range []struct {
		now  time.Time
		want bool
	}{
		{at, false},
		{at.Add(time.Minute - time.Millisecond), false},
		{at.Add(time.Minute), true},
		{at.Add(time.Hour), true},
	} {
		if got := s.Expired(tt.now); got != tt.want {
			t.Errorf("Expired(%s) = %v, want %v", tt.now, got, tt.want)
		}
	}
	// An absolute end before the idle expiry ends the session first; one
	// after it changes nothing.
	s.Expires = at.Add(10 * time.Second)
	if s.Expired(at.Add(10*time.Second-time.Millisecond)) || !s.Expired(at.Add(10*time.Second)) || !s.End().Equal(s.Expires) {
		t.Errorf("absolute end at +10s: End %s", s.End())
	}
	s.Expires = at.Add(time.Hour)
	if s.Expired(at.Add(time.Minute-time.Millisecond)) || !s.Expired(at.Add(time.Minute)) || !s.End().Equal(at.Add(time.Minute)) {
		t.Errorf("absolute end after the idle expiry: End %s", s.End())
	}
}

func TestETag(t *testing.T) {
	for rev, want := range map[uint64]string{1: `"1"`, 2: `"2"`, 18446744073709551615: `"18446744073709551615"`} {
		s := Session{Revision: rev}
		if got := s.ETag(); got != want {
			t.Errorf("revision %d: ETag %s, want %s", rev, got, want)
		}
	}
}

func TestSort(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	sessions := []Session{
		{ID: "c", LastActive: at.Add(time.Second)},
		{ID: "b", LastActive: at, Created: at.Add(-time.Hour)},
		{ID: "d", LastActive: at.Add(-time.Second)},
		{ID: "a", LastActive: at},
	}
	Sort(sessions)
	var got []string
	for _, s := range sessions {
		got = append(got, s.ID)
	}
	if strings.Join(got, "") != "cabd" {
		t.Fatalf("order %v, want the most recently active first, then by id: c a b d", got)
	}
}

func TestStoreFullError(t *testing.T) {
	err := fmt.Errorf("create: %w", StoreFullError{RetryAfter: time.Minute})
	var full StoreFullError
	if !errors.Is(err, ErrStoreFull) || !errors.As(err, &full) || full.RetryAfter != time.Minute {
		t.Fatalf("%v: not ErrStoreFull with its hint", err)
	}
	if err.Error() != "create: "+ErrStoreFull.Error() {
		t.Fatalf("message %q", err)
	}
}
