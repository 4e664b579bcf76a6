// Package storetest is the suite every store.Store must pass: the
// semantics the handler relies on, run through the interface. The memory
// and the Redis store both run it, so they answer the same; a store written
// elsewhere runs it from its own tests:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newMyStore(t) })
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// Run runs the contract of a Store against fresh, empty stores from
// newStore (one per subtest), which cleans up after itself with t.Cleanup.
// A store that shares its data between calls (one Redis, say) must keep the
// stores it returns apart, for instance by a key prefix per call.
//
// The times Run hands a store start at the real present and only move
// forward, so a store may also expire sessions by its own clock (as Redis
// expires keys); they are whole milliseconds in UTC.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	// Times start at the real present and only move forward: Redis expires
	// keys by its own clock, so a store must never be handed a past that
	// Redis would already have dropped.
	now := time.Now().UTC().Truncate(time.Millisecond)
	fresh := func(at time.Time, timeout time.Duration) store.Session {
		return store.Session{ID: store.NewID(), Created: at, LastActive: at, Timeout: timeout, Payload: json.RawMessage(`{"a":1}`)}
	}

	t.Run("lifecycle", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/app", Subject: "alice"}
		s, err := st.Create(ctx, o, fresh(now, time.Minute), 10, nil, now)
		tag1 := s.ETag()
		if err != nil || s.Revision != 1 || !strongTag(tag1) {
			t.Fatalf("create: %+v %v", s, err)
		}
		got, err := st.Get(ctx, o, s.ID, now.Add(time.Second))
		if err != nil || string(got.Payload) != `{"a":1}` || !got.LastActive.Equal(now) || !got.Created.Equal(now) || got.Timeout != time.Minute || got.ETag() != tag1 {
			t.Fatalf("get: %+v %v", got, err)
		}
		at := now.Add(30 * time.Second)
		up, err := st.Update(ctx, o, s.ID, nil, nil, at)
		tag2 := up.ETag()
		if err != nil || string(up.Payload) != `{"a":1}` || !up.LastActive.Equal(at) || !strongTag(tag2) || tag2 == tag1 || !up.Created.Equal(now) || up.Revision != 2 {
			t.Fatalf("update keeping the payload: %+v %v", up, err)
		}
		up, err = st.Update(ctx, o, s.ID, json.RawMessage(`{"b":[2]}`), &store.IfMatch{Tags: []string{tag2}}, at)
		tag3 := up.ETag()
		if err != nil || string(up.Payload) != `{"b":[2]}` || tag3 == tag2 || tag3 == tag1 || !strongTag(tag3) {
			t.Fatalf("update with If-Match: %+v %v", up, err)
		}
		for _, stale := range []string{tag2, `"2"`, `"3"`} { // nor the revision
			if _, err := st.Update(ctx, o, s.ID, json.RawMessage(`{}`), &store.IfMatch{Tags: []string{stale}}, at); !errors.Is(err, store.ErrPreconditionFailed) {
				t.Fatalf("stale If-Match %s: %v", stale, err)
			}
		}
		if _, err := st.Update(ctx, o, s.ID, json.RawMessage(`{}`), &store.IfMatch{}, at); !errors.Is(err, store.ErrPreconditionFailed) {
			t.Fatalf("empty If-Match: %v", err)
		}
		if got, _ := st.Get(ctx, o, s.ID, at); got.ETag() != tag3 || string(got.Payload) != `{"b":[2]}` {
			t.Fatalf("a refused write changed the session: %+v", got)
		}
		list, err := st.List(ctx, o, at)
		if err != nil || len(list) != 1 || list[0].ID != s.ID || list[0].ETag() != tag3 {
			t.Fatalf("list: %+v %v", list, err)
		}
		if err := st.Delete(ctx, o, s.ID, &store.IfMatch{Tags: []string{tag1}}, at); !errors.Is(err, store.ErrPreconditionFailed) {
			t.Fatalf("delete with stale If-Match: %v", err)
		}
		if err := st.Delete(ctx, o, s.ID, &store.IfMatch{Any: true}, at); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := st.Get(ctx, o, s.ID, at); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := st.Delete(ctx, o, s.ID, nil, at); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if list, _ := st.List(ctx, o, at); len(list) != 0 {
			t.Fatalf("list after delete: %+v", list)
		}
	})

	t.Run("isolation", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/app", Issuer: "https://a.example", Subject: "alice"}
		s, _ := st.Create(ctx, o, fresh(now, time.Minute), 10, nil, now)
		for _, other := range []store.Owner{
			{App: "/app", Issuer: "https://a.example", Subject: "bob"},
			{App: "/other", Issuer: "https://a.example", Subject: "alice"},
			{App: "", Issuer: "https://a.example", Subject: "alice"},
			{App: "/app", Issuer: "https://a.example", Subject: "ALICE"},
			{App: "/app\x00alice", Issuer: "https://a.example", Subject: ""},
			// The same subject from another issuer, or from a token
			// without iss, is another account.
			{App: "/app", Issuer: "https://b.example", Subject: "alice"},
			{App: "/app", Issuer: "", Subject: "alice"},
			{App: "/app", Issuer: "https://a.example/", Subject: "alice"},
			{App: "/app", Issuer: "https://a.example\x00alice", Subject: ""},
		} {
			if _, err := st.Get(ctx, other, s.ID, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%q get: %v", other, err)
			}
			if _, err := st.Update(ctx, other, s.ID, nil, nil, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%q update: %v", other, err)
			}
			if err := st.Delete(ctx, other, s.ID, nil, now); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%q delete: %v", other, err)
			}
			if l, _ := st.List(ctx, other, now); len(l) != 0 {
				t.Errorf("%q list: %v", other, l)
			}
		}
		if _, err := st.Get(ctx, o, s.ID, now); err != nil {
			t.Fatalf("owner lost the session: %v", err)
		}
	})

	t.Run("expiry", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{Subject: "carol"}
		short, _ := st.Create(ctx, o, fresh(now, time.Minute), 10, nil, now)
		long, _ := st.Create(ctx, o, fresh(now, time.Hour), 10, nil, now)
		if _, err := st.Get(ctx, o, short.ID, now.Add(time.Minute-time.Millisecond)); err != nil {
			t.Fatalf("expired early: %v", err)
		}
		end := now.Add(time.Minute)
		if _, err := st.Get(ctx, o, short.ID, end); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get at expiry: %v", err)
		}
		if _, err := st.Update(ctx, o, short.ID, nil, nil, end); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update after expiry: %v", err)
		}
		if l, _ := st.List(ctx, o, end); len(l) != 1 || l[0].ID != long.ID {
			t.Fatalf("list at expiry: %+v", l)
		}
		// A write moves lastActive, so the idle time starts again.
		if _, err := st.Update(ctx, o, long.ID, nil, nil, now.Add(50*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Get(ctx, o, long.ID, now.Add(100*time.Minute)); err != nil {
			t.Fatalf("refreshed session expired: %v", err)
		}
	})

	t.Run("absolute end", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/abs", Subject: "carol"}
		sess := fresh(now, time.Minute)
		sess.Expires = now.Add(90 * time.Second)
		s, err := st.Create(ctx, o, sess, 10, nil, now)
		if err != nil || !s.Expires.Equal(sess.Expires) {
			t.Fatalf("create: %+v %v", s, err)
		}
		// Updates keep the session from idling out, never past its end.
		for _, at := range []time.Duration{40 * time.Second, 80 * time.Second} {
			up, err := st.Update(ctx, o, s.ID, json.RawMessage(`{"b":1}`), nil, now.Add(at))
			if err != nil || !up.Expires.Equal(sess.Expires) {
				t.Fatalf("update at +%s: %+v %v", at, up, err)
			}
		}
		before, end := now.Add(90*time.Second-time.Millisecond), now.Add(90*time.Second)
		if got, err := st.Get(ctx, o, s.ID, before); err != nil || !got.Expires.Equal(sess.Expires) || got.End() != sess.Expires {
			t.Fatalf("get before the end: %+v %v", got, err)
		}
		if l, _ := st.List(ctx, o, before); len(l) != 1 || !l[0].Expires.Equal(sess.Expires) {
			t.Fatalf("list before the end: %+v", l)
		}
		if _, err := st.Get(ctx, o, s.ID, end); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get at the end: %v", err)
		}
		if _, err := st.Update(ctx, o, s.ID, nil, nil, end); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update at the end: %v", err)
		}
		if l, _ := st.List(ctx, o, end); len(l) != 0 {
			t.Fatalf("list at the end: %+v", l)
		}
		if n, err := st.DeleteAll(ctx, o, "", end); err != nil || n != 0 {
			t.Fatalf("delete all counted an ended session: %d %v", n, err)
		}
		// No absolute end: Expires stays zero through every operation.
		open, _ := st.Create(ctx, o, fresh(end, time.Minute), 10, nil, end)
		up, _ := st.Update(ctx, o, open.ID, nil, nil, end)
		got, _ := st.Get(ctx, o, open.ID, end)
		if !open.Expires.IsZero() || !up.Expires.IsZero() || !got.Expires.IsZero() {
			t.Fatalf("a session without an absolute end got one: %v %v %v", open.Expires, up.Expires, got.Expires)
		}
	})

	t.Run("list order", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/order", Subject: "carol"}
		var ids []string
		for i := range 4 {
			s, err := st.Create(ctx, o, fresh(now.Add(time.Duration(i)*time.Second), time.Hour), 10, nil, now.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID)
		}
		// The oldest becomes the most recently active.
		at := now.Add(10 * time.Second)
		if _, err := st.Update(ctx, o, ids[0], nil, nil, at); err != nil {
			t.Fatal(err)
		}
		list, err := st.List(ctx, o, at)
		if err != nil || len(list) != 4 {
			t.Fatalf("list: %+v %v", list, err)
		}
		want := []string{ids[0], ids[3], ids[2], ids[1]}
		for i := range want {
			if list[i].ID != want[i] {
				t.Fatalf("list order %d: %s, want %s (most recently active first)", i, list[i].ID, want[i])
			}
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/idem", Subject: "ida"}
		key := &store.Idempotency{Key: "k-1", Fingerprint: "body-a", TTL: time.Hour}
		first, err := st.Create(ctx, o, fresh(now, time.Hour), 10, key, now)
		if err != nil {
			t.Fatal(err)
		}
		// The first answer, whatever happened since.
		if _, err := st.Update(ctx, o, first.ID, json.RawMessage(`{"b":2}`), nil, now); err != nil {
			t.Fatal(err)
		}
		again, err := st.Create(ctx, o, fresh(now, time.Hour), 10, key, now)
		if err != nil || again.ID != first.ID || again.ETag() != first.ETag() || string(again.Payload) != `{"a":1}` || !again.Created.Equal(first.Created) {
			t.Fatalf("retry: %+v %v, want %+v", again, err, first)
		}
		other := &store.Idempotency{Key: "k-1", Fingerprint: "body-b", TTL: time.Hour}
		if _, err := st.Create(ctx, o, fresh(now, time.Hour), 10, other, now); !errors.Is(err, store.ErrIdempotencyMismatch) {
			t.Fatalf("the key with another body: %v", err)
		}
		if l, _ := st.List(ctx, o, now); len(l) != 1 {
			t.Fatalf("%d sessions after retries, want 1", len(l))
		}
		// A key is the owner's own.
		if s, err := st.Create(ctx, store.Owner{App: "/idem", Subject: "idb"}, fresh(now, time.Hour), 10, key, now); err != nil || s.ID == first.ID {
			t.Fatalf("another owner's key: %+v %v", s, err)
		}
		// Concurrent sends of one key make one session.
		race := &store.Idempotency{Key: "k-race", Fingerprint: "body", TTL: time.Hour}
		ids := make(chan string, 8)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := st.Create(ctx, o, fresh(now, time.Hour), 10, race, now)
				if err != nil {
					t.Error(err)
				}
				ids <- s.ID
			}()
		}
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if l, _ := st.List(ctx, o, now); len(seen) != 1 || len(l) != 2 {
			t.Fatalf("8 concurrent sends: %d ids, %d sessions; want 1 and 2", len(seen), len(l))
		}
		// A create that fails is not remembered.
		full := &store.Idempotency{Key: "k-full", Fingerprint: "body", TTL: time.Hour}
		if _, err := st.Create(ctx, o, fresh(now, time.Hour), 2, full, now); !errors.Is(err, store.ErrTooManySessions) {
			t.Fatalf("over the limit: %v", err)
		}
		if s, err := st.Create(ctx, o, fresh(now, time.Hour), 10, full, now); err != nil || s.ID == "" {
			t.Fatalf("the key of a refused create: %+v %v", s, err)
		}
		// After its TTL (by the time given and, for a store that expires
		// by its own clock, the real one) a key is forgotten.
		short := &store.Idempotency{Key: "k-short", Fingerprint: "body", TTL: 200 * time.Millisecond}
		s1, _ := st.Create(ctx, o, fresh(now, time.Hour), 10, short, now)
		time.Sleep(250 * time.Millisecond)
		later := now.Add(time.Second)
		if s2, err := st.Create(ctx, o, fresh(later, time.Hour), 10, short, later); err != nil || s2.ID == s1.ID {
			t.Fatalf("a key past its TTL: %+v %v", s2, err)
		}
	})

	t.Run("max per owner", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/a", Subject: "dave"}
		for i := 0; i < 3; i++ {
			if _, err := st.Create(ctx, o, fresh(now, time.Minute), 3, nil, now); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.Create(ctx, o, fresh(now, time.Minute), 3, nil, now); !errors.Is(err, store.ErrTooManySessions) {
			t.Fatalf("fourth: %v", err)
		}
		if _, err := st.Create(ctx, store.Owner{App: "/a", Subject: "erin"}, fresh(now, time.Minute), 3, nil, now); err != nil {
			t.Fatalf("another account: %v", err)
		}
		later := now.Add(time.Minute)
		if _, err := st.Create(ctx, o, fresh(later, time.Minute), 3, nil, later); err != nil {
			t.Fatalf("expired sessions still counted: %v", err)
		}
	})

	t.Run("delete all", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/app", Subject: "everywhere"}
		other := store.Owner{App: "/app", Subject: "someone else"}
		var ids []string
		for i := 0; i < 4; i++ {
			s, err := st.Create(ctx, o, fresh(now, time.Hour), 10, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID)
		}
		short, _ := st.Create(ctx, o, fresh(now, time.Minute), 10, nil, now)
		theirs, _ := st.Create(ctx, other, fresh(now, time.Hour), 10, nil, now)
		later := now.Add(2 * time.Minute) // short has expired: not counted
		n, err := st.DeleteAll(ctx, o, ids[0], later)
		if err != nil || n != 3 {
			t.Fatalf("delete all but one: %d, %v; want 3", n, err)
		}
		if list, _ := st.List(ctx, o, later); len(list) != 1 || list[0].ID != ids[0] {
			t.Fatalf("left: %+v", list)
		}
		if _, err := st.Get(ctx, o, short.ID, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("an expired session survived a delete all: %v", err)
		}
		if _, err := st.Get(ctx, other, theirs.ID, later); err != nil {
			t.Fatalf("another account's session went with it: %v", err)
		}
		if n, err := st.DeleteAll(ctx, o, "", later); err != nil || n != 1 {
			t.Fatalf("delete all: %d, %v; want 1", n, err)
		}
		if n, err := st.DeleteAll(ctx, o, "", later); err != nil || n != 0 {
			t.Fatalf("delete all of nothing: %d, %v", n, err)
		}
	})

	t.Run("delete all under concurrent creates", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{App: "/app", Subject: "busy"}
		var created, deleted atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					if _, err := st.Create(ctx, o, fresh(now, time.Hour), 1000, nil, now); err != nil {
						t.Error(err)
						return
					}
					created.Add(1)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				n, err := st.DeleteAll(ctx, o, "", now)
				if err != nil {
					t.Error(err)
					return
				}
				deleted.Add(int64(n))
			}
		}()
		wg.Wait()
		list, _ := st.List(ctx, o, now)
		if created.Load() != deleted.Load()+int64(len(list)) {
			t.Fatalf("created %d, deleted %d, left %d: the counts do not add up", created.Load(), deleted.Load(), len(list))
		}
	})

	t.Run("concurrent if-match", func(t *testing.T) {
		st := newStore(t)
		o := store.Owner{Subject: "race"}
		s, _ := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: json.RawMessage(`{"n":0}`)}, 10, nil, now)
		var acked atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 30; i++ {
					cur, err := st.Get(ctx, o, s.ID, now)
					if err != nil {
						t.Error(err)
						return
					}
					var v struct{ N int }
					json.Unmarshal(cur.Payload, &v)
					next := json.RawMessage(fmt.Sprintf(`{"n":%d}`, v.N+1))
					switch _, err := st.Update(ctx, o, s.ID, next, &store.IfMatch{Tags: []string{cur.ETag()}}, now); {
					case err == nil:
						acked.Add(1)
					case !errors.Is(err, store.ErrPreconditionFailed):
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		final, _ := st.Get(ctx, o, s.ID, now)
		var v struct{ N int64 }
		json.Unmarshal(final.Payload, &v)
		if v.N != acked.Load() || acked.Load() == 0 {
			t.Fatalf("counter %d, acknowledged writes %d", v.N, acked.Load())
		}
	})
}

// Benchmark measures each operation (create, get, update, list) on the
// store newStore returns, with a small payload.
func Benchmark(b *testing.B, newStore func(b *testing.B) store.Store) {
	ctx := context.Background()
	st := newStore(b)
	payload := []byte(`{"preferences":{"theme":"dark","resolution":"wide"}}`)
	now := time.Now()
	o := store.Owner{App: "/bench", Subject: "bench"}
	s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: payload}, 1<<30, nil, now)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("create", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if _, err := st.Create(ctx, store.Owner{App: "/bench", Subject: fmt.Sprint("c", i)}, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Minute, Payload: payload}, 10, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Get(ctx, o, s.ID, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("update", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Update(ctx, o, s.ID, payload, nil, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.List(ctx, o, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// strongTag says whether tag is a strong entity tag that names one write:
// quoted, and long enough to be random (NewTag's 22 characters).
func strongTag(tag string) bool {
	return len(tag) >= 2+22 && tag[0] == '"' && tag[len(tag)-1] == '"'
}
