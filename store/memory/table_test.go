package memory

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func newTestSession(now time.Time, timeout time.Duration) store.Session {
	return store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: timeout, Payload: json.RawMessage(`{"a":1}`)}
}

func TestSessionTableLifecycle(t *testing.T) {
	tbl := newSessionTable()
	alice := store.Owner{App: "/app", Subject: "alice"}
	s, err := tbl.create(alice, newTestSession(t0, time.Minute), 10, tableLimits{1000, 1 << 40}, t0)
	if err != nil || s.Revision != 1 || s.Tag == "" {
		t.Fatalf("create: %+v %v", s, err)
	}
	got, err := tbl.get(alice, s.ID, t0.Add(30*time.Second))
	if err != nil || string(got.Payload) != `{"a":1}` || got.LastActive != t0 {
		t.Fatalf("get: %+v %v", got, err)
	}

	// Update keeps the payload when none is given, refreshes lastActive,
	// and moves the revision every time.
	at := t0.Add(50 * time.Second)
	up, err := tbl.update(alice, s.ID, nil, nil, 1<<40, at)
	if err != nil || string(up.Payload) != `{"a":1}` || up.LastActive != at || up.Revision != 2 || up.Tag == s.Tag {
		t.Fatalf("update without payload: %+v %v", up, err)
	}
	second := up.ETag()
	up, err = tbl.update(alice, s.ID, json.RawMessage(`{"b":2}`), &store.IfMatch{Tags: []string{second}}, 1<<40, at)
	if err != nil || string(up.Payload) != `{"b":2}` || up.Revision != 3 {
		t.Fatalf("update with matching If-Match: %+v %v", up, err)
	}
	if _, err := tbl.update(alice, s.ID, json.RawMessage(`{}`), &store.IfMatch{Tags: []string{second}}, 1<<40, at); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: %v", err)
	}
	if got, _ := tbl.get(alice, s.ID, at); got.Revision != 3 || string(got.Payload) != `{"b":2}` {
		t.Fatalf("a failed precondition changed the session: %+v", got)
	}
	if err := tbl.remove(alice, s.ID, &store.IfMatch{Tags: []string{s.ETag()}}, at); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("delete with stale If-Match: %v", err)
	}
	if err := tbl.remove(alice, s.ID, &store.IfMatch{Any: true}, at); err != nil {
		t.Fatalf("delete with If-Match *: %v", err)
	}
	if _, err := tbl.get(alice, s.ID, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := tbl.remove(alice, s.ID, nil, at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestSessionTableKeys: ids of NewID's form are keyed by the bytes they
// stand for, any other id by its hash; the two kinds never meet, even for
// the same 16 bytes written otherwise, and owners are told apart in full.
func TestSessionTableKeys(t *testing.T) {
	tbl := newSessionTable()
	alice := store.Owner{App: "/app", Issuer: "https://issuer.example", Subject: "alice"}
	ids := []string{
		"AAAAAAAAAAAAAAAAAAAAAA", // 16 zero bytes, NewID's form
		"AAAAAAAAAAAAAAAAAAAAAB", // the same bytes, spelt with stray low bits: another id
		"AAAAAAAAAAAAAAAAAAAAA",  // 21 characters
		"a", "a.b~c", strings.Repeat("z", 128),
		"AAAAAAAAAAAAAAAAAAAAA=", // padded: not base64url without padding
	}
	for i, id := range ids {
		s := store.Session{ID: id, Created: t0, LastActive: t0, Timeout: time.Hour, Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
		if _, err := tbl.create(alice, s, 100, tableLimits{1000, 1 << 40}, t0); err != nil {
			t.Fatalf("create %q: %v", id, err)
		}
	}
	for i, id := range ids {
		got, err := tbl.get(alice, id, t0)
		if err != nil || got.ID != id || string(got.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("get %q: %+v %v", id, got, err)
		}
	}
	if list := tbl.list(alice, t0); len(list) != len(ids) {
		t.Fatalf("list: %d sessions, want %d", len(list), len(ids))
	}
	// Owners that share parts, or whose parts join to the same text.
	for _, other := range []store.Owner{
		{App: "/app", Issuer: "https://issuer.example", Subject: "alicE"},
		{App: "/app", Issuer: "https://issuer.example/", Subject: "alice"},
		{App: "/ap", Issuer: "phttps://issuer.example", Subject: "alice"},
		{App: "/app", Subject: "alice"},
	} {
		if _, err := tbl.get(other, ids[0], t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%+v reads alice's session: %v", other, err)
		}
	}
	if err := tbl.remove(alice, ids[1], nil, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.get(alice, ids[0], t0); err != nil {
		t.Fatalf("removing %q removed %q: %v", ids[1], ids[0], err)
	}
	if n := tbl.removeAll(alice, ids[3], t0); n != len(ids)-2 {
		t.Fatalf("removeAll: %d removed, want %d", n, len(ids)-2)
	}
	if list := tbl.list(alice, t0); len(list) != 1 || list[0].ID != ids[3] {
		t.Fatalf("after removeAll except %q: %+v", ids[3], list)
	}
	if tbl.live.Load() != 1 {
		t.Fatalf("live %d, want 1", tbl.live.Load())
	}
}

func TestSessionTableIsolation(t *testing.T) {
	tbl := newSessionTable()
	alice := store.Owner{App: "/app", Subject: "alice"}
	s, _ := tbl.create(alice, newTestSession(t0, time.Minute), 10, tableLimits{1000, 1 << 40}, t0)
	for _, other := range []store.Owner{
		{App: "/app", Subject: "bob"},
		{App: "/other", Subject: "alice"},
		{App: "", Subject: "alice"},
		{App: "/app", Subject: "ALICE"},
	} {
		if _, err := tbl.get(other, s.ID, t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%+v get: %v", other, err)
		}
		if _, err := tbl.update(other, s.ID, nil, nil, 1<<40, t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%+v update: %v", other, err)
		}
		if err := tbl.remove(other, s.ID, nil, t0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%+v delete: %v", other, err)
		}
		if l := tbl.list(other, t0); len(l) != 0 {
			t.Errorf("%+v list: %v", other, l)
		}
	}
	if _, err := tbl.get(alice, s.ID, t0); err != nil {
		t.Fatalf("owner lost the session: %v", err)
	}
}

func TestSessionTableExpiry(t *testing.T) {
	tbl := newSessionTable()
	o := store.Owner{Subject: "carol"}
	s, _ := tbl.create(o, newTestSession(t0, time.Minute), 10, tableLimits{1000, 1 << 40}, t0)
	long, _ := tbl.create(o, newTestSession(t0, time.Hour), 10, tableLimits{1000, 1 << 40}, t0)

	// Alive until lastActive+timeout, exactly; gone from that instant.
	if _, err := tbl.get(o, s.ID, t0.Add(time.Minute-time.Millisecond)); err != nil {
		t.Fatalf("expired early: %v", err)
	}
	end := t0.Add(time.Minute)
	if _, err := tbl.get(o, s.ID, end); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get at expiry: %v", err)
	}
	if l := tbl.list(o, end); len(l) != 1 || l[0].ID != long.ID {
		t.Fatalf("list at expiry: %+v", l)
	}
	if _, err := tbl.update(o, s.ID, nil, nil, 1<<40, end); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update after expiry: %v", err)
	}

	// The sweep removes what expired and nothing else.
	s2, _ := tbl.create(o, newTestSession(end, time.Minute), 10, tableLimits{1000, 1 << 40}, end)
	if n := tbl.sweep(end.Add(2 * time.Minute)); n != 1 {
		t.Fatalf("sweep removed %d, want 1 (s2)", n)
	}
	if _, err := tbl.get(o, s2.ID, end); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("swept session still readable at an earlier time: %v", err)
	}
	if _, err := tbl.get(o, long.ID, end); err != nil {
		t.Fatalf("sweep removed a live session: %v", err)
	}
}

func TestSessionTableMaxPerOwner(t *testing.T) {
	tbl := newSessionTable()
	o := store.Owner{App: "/a", Subject: "dave"}
	for i := 0; i < 3; i++ {
		if _, err := tbl.create(o, newTestSession(t0, time.Minute), 3, tableLimits{1000, 1 << 40}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tbl.create(o, newTestSession(t0, time.Minute), 3, tableLimits{1000, 1 << 40}, t0); !errors.Is(err, store.ErrTooManySessions) {
		t.Fatalf("fourth: %v", err)
	}
	if _, err := tbl.create(store.Owner{App: "/a", Subject: "erin"}, newTestSession(t0, time.Minute), 3, tableLimits{1000, 1 << 40}, t0); err != nil {
		t.Fatalf("another account is limited by dave's sessions: %v", err)
	}
	// Expired sessions do not count.
	later := t0.Add(time.Minute)
	if _, err := tbl.create(o, newTestSession(later, time.Minute), 3, tableLimits{1000, 1 << 40}, later); err != nil {
		t.Fatalf("expired sessions still counted: %v", err)
	}
}

// TestSessionTableConcurrentIfMatch runs read-modify-write loops against one
// session: with If-Match, every acknowledged write is kept.
func TestSessionTableConcurrentIfMatch(t *testing.T) {
	tbl := newSessionTable()
	o := store.Owner{Subject: "race"}
	s, _ := tbl.create(o, newTestSession(t0, time.Hour), 10, tableLimits{1000, 1 << 40}, t0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				cur, err := tbl.get(o, s.ID, t0)
				if err != nil {
					t.Error(err)
					return
				}
				var n int
				_ = json.Unmarshal(cur.Payload, &struct{ N *int }{&n})
				next := json.RawMessage(fmt.Sprintf(`{"N":%d}`, n+1))
				_, err = tbl.update(o, s.ID, next, &store.IfMatch{Tags: []string{cur.ETag()}}, 1<<40, t0)
				if err == nil {
					mu.Lock()
					acked++
					mu.Unlock()
				} else if !errors.Is(err, store.ErrPreconditionFailed) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	final, _ := tbl.get(o, s.ID, t0)
	var n struct{ N int }
	_ = json.Unmarshal(final.Payload, &n)
	if n.N != acked || acked == 0 {
		t.Fatalf("counter %d, acknowledged writes %d", n.N, acked)
	}
}

func BenchmarkSessionTableGet(b *testing.B) {
	tbl := newSessionTable()
	o := store.Owner{App: "/app", Subject: "bench"}
	s, _ := tbl.create(o, newTestSession(t0, time.Hour), 10, tableLimits{1000, 1 << 40}, t0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tbl.get(o, s.ID, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionTableUpdate(b *testing.B) {
	tbl := newSessionTable()
	o := store.Owner{App: "/app", Subject: "bench"}
	s, _ := tbl.create(o, newTestSession(t0, time.Hour), 10, tableLimits{1000, 1 << 40}, t0)
	payload := json.RawMessage(`{"theme":"dark"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tbl.update(o, s.ID, payload, nil, 1<<40, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSweepHoldsNoGlobalLock: while a sweep is part-way through the table,
// reads and writes in every shard go on.
func TestSweepHoldsNoGlobalLock(t *testing.T) {
	tbl := newSessionTable()
	var owners []store.Owner
	for i := 0; i < 2000; i++ {
		o := store.Owner{App: "/s", Subject: fmt.Sprint("acct-", i)}
		tbl.create(o, newTestSession(t0, time.Minute), 10, tableLimits{1 << 20, 1 << 40}, t0)
		owners = append(owners, o)
	}
	paused, resume := make(chan struct{}), make(chan struct{})
	tbl.afterShard = func(shard int) {
		if shard == len(tbl.shards)/2 {
			close(paused)
			<-resume
		}
	}
	done := make(chan int)
	go func() { done <- tbl.sweep(t0.Add(time.Hour)) }()
	<-paused
	served := make(chan struct{})
	go func() {
		for _, o := range owners {
			tbl.list(o, t0)
			tbl.create(o, newTestSession(t0.Add(time.Hour), time.Hour), 10, tableLimits{1 << 20, 1 << 40}, t0.Add(time.Hour))
		}
		close(served)
	}()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("requests blocked while the sweep was paused between shards")
	}
	close(resume)
	<-done
	// The sweep and the creates (which drop their account's expired
	// sessions) removed all 2000 old sessions between them.
	if live := tbl.live.Load(); live != 2000 {
		t.Fatalf("%d sessions held, want the 2000 new ones", live)
	}
}

func TestSessionTableByteBudget(t *testing.T) {
	tbl := newSessionTable()
	o := store.Owner{App: "/app", Issuer: "https://issuer.example", Subject: "budget"}
	payload := json.RawMessage(`{"p":"` + strings.Repeat("x", 1000) + `"}`)
	mk := func() store.Session {
		return store.Session{ID: store.NewID(), Created: t0, LastActive: t0, Timeout: time.Hour, Payload: payload}
	}
	one := storedSize(o, &store.Session{ID: store.NewID(), Payload: payload})
	limits := tableLimits{live: 1000, bytes: 3 * one}
	var ids []string
	for i := 0; i < 3; i++ {
		s, err := tbl.create(o, mk(), 100, limits, t0)
		if err != nil {
			t.Fatalf("create %d within the budget: %v", i, err)
		}
		ids = append(ids, s.ID)
	}
	if got := tbl.bytes.Load(); got != 3*one {
		t.Fatalf("bytes held: %d, want %d", got, 3*one)
	}
	if _, err := tbl.create(o, mk(), 100, limits, t0); !errors.Is(err, store.ErrStoreFull) {
		t.Fatalf("create over the budget: %v, want ErrStoreFull", err)
	}
	if n := len(tbl.list(o, t0)); n != 3 {
		t.Fatalf("a refused create wrote something: %d sessions", n)
	}
	// An update that grows a payload past the budget changes nothing; one
	// that shrinks it is always let through.
	bigger := json.RawMessage(`{"p":"` + strings.Repeat("y", 1001) + `"}`)
	if _, err := tbl.update(o, ids[0], bigger, nil, limits.bytes, t0); !errors.Is(err, store.ErrStoreFull) {
		t.Fatalf("growing update over the budget: %v, want ErrStoreFull", err)
	}
	if s, _ := tbl.get(o, ids[0], t0); string(s.Payload) != string(payload) || s.Revision != 1 {
		t.Fatalf("a refused update wrote: revision %d", s.Revision)
	}
	if _, err := tbl.update(o, ids[0], json.RawMessage(`{}`), nil, limits.bytes, t0); err != nil {
		t.Fatalf("shrinking update: %v", err)
	}
	// The shrink made room for the growth it gave back.
	if _, err := tbl.update(o, ids[0], payload, nil, limits.bytes, t0); err != nil {
		t.Fatalf("update back to the old size: %v", err)
	}
	// A delete makes room for one more.
	if err := tbl.remove(o, ids[1], nil, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.create(o, mk(), 100, limits, t0); err != nil {
		t.Fatalf("create after a delete: %v", err)
	}
	// Expiry and the sweep give every byte back.
	tbl.sweep(t0.Add(2 * time.Hour))
	if got, live := tbl.bytes.Load(), tbl.live.Load(); got != 0 || live != 0 {
		t.Fatalf("after the sweep: %d bytes, %d sessions held", got, live)
	}
}
