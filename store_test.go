package ownidsessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testStoreContract runs the semantics every Store must have, through the
// interface, against a fresh store from newStore. The memory and the Redis
// store both run it, so they answer the same.
func testStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	// Times start at the real present and only move forward: Redis expires
	// keys by its own clock, so a store must never be handed a past that
	// Redis would already have dropped.
	now := time.Now().UTC().Truncate(time.Millisecond)
	fresh := func(at time.Time, timeout time.Duration) Session {
		return Session{ID: newSessionID(), Created: at, LastActive: at, Timeout: timeout, Payload: json.RawMessage(`{"a":1}`)}
	}

	t.Run("lifecycle", func(t *testing.T) {
		st := newStore(t)
		o := Owner{App: "/app", Subject: "alice"}
		s, err := st.Create(ctx, o, fresh(now, time.Minute), 10, now)
		if err != nil || s.ETag() != `"1"` {
			t.Fatalf("create: %+v %v", s, err)
		}
		got, err := st.Get(ctx, o, s.ID, now.Add(time.Second))
		if err != nil || string(got.Payload) != `{"a":1}` || !got.LastActive.Equal(now) || !got.Created.Equal(now) || got.Timeout != time.Minute || got.ETag() != `"1"` {
			t.Fatalf("get: %+v %v", got, err)
		}
		at := now.Add(30 * time.Second)
		up, err := st.Update(ctx, o, s.ID, nil, nil, at)
		if err != nil || string(up.Payload) != `{"a":1}` || !up.LastActive.Equal(at) || up.ETag() != `"2"` || !up.Created.Equal(now) {
			t.Fatalf("update keeping the payload: %+v %v", up, err)
		}
		up, err = st.Update(ctx, o, s.ID, json.RawMessage(`{"b":[2]}`), &ifMatch{tags: []string{`"2"`}}, at)
		if err != nil || string(up.Payload) != `{"b":[2]}` || up.ETag() != `"3"` {
			t.Fatalf("update with If-Match: %+v %v", up, err)
		}
		if _, err := st.Update(ctx, o, s.ID, json.RawMessage(`{}`), &ifMatch{tags: []string{`"2"`}}, at); !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("stale If-Match: %v", err)
		}
		if _, err := st.Update(ctx, o, s.ID, json.RawMessage(`{}`), &ifMatch{}, at); !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("empty If-Match: %v", err)
		}
		if got, _ := st.Get(ctx, o, s.ID, at); got.ETag() != `"3"` || string(got.Payload) != `{"b":[2]}` {
			t.Fatalf("a refused write changed the session: %+v", got)
		}
		list, err := st.List(ctx, o, at)
		if err != nil || len(list) != 1 || list[0].ID != s.ID || list[0].ETag() != `"3"` {
			t.Fatalf("list: %+v %v", list, err)
		}
		if err := st.Delete(ctx, o, s.ID, &ifMatch{tags: []string{`"1"`}}, at); !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("delete with stale If-Match: %v", err)
		}
		if err := st.Delete(ctx, o, s.ID, &ifMatch{any: true}, at); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := st.Get(ctx, o, s.ID, at); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
		if err := st.Delete(ctx, o, s.ID, nil, at); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if list, _ := st.List(ctx, o, at); len(list) != 0 {
			t.Fatalf("list after delete: %+v", list)
		}
	})

	t.Run("isolation", func(t *testing.T) {
		st := newStore(t)
		o := Owner{App: "/app", Issuer: "https://a.example", Subject: "alice"}
		s, _ := st.Create(ctx, o, fresh(now, time.Minute), 10, now)
		for _, other := range []Owner{
			{"/app", "https://a.example", "bob"},
			{"/other", "https://a.example", "alice"},
			{"", "https://a.example", "alice"},
			{"/app", "https://a.example", "ALICE"},
			{"/app\x00alice", "https://a.example", ""},
			// The same subject from another issuer, or from a token
			// without iss, is another account.
			{"/app", "https://b.example", "alice"},
			{"/app", "", "alice"},
			{"/app", "https://a.example/", "alice"},
			{"/app", "https://a.example\x00alice", ""},
		} {
			if _, err := st.Get(ctx, other, s.ID, now); !errors.Is(err, ErrNotFound) {
				t.Errorf("%q get: %v", other, err)
			}
			if _, err := st.Update(ctx, other, s.ID, nil, nil, now); !errors.Is(err, ErrNotFound) {
				t.Errorf("%q update: %v", other, err)
			}
			if err := st.Delete(ctx, other, s.ID, nil, now); !errors.Is(err, ErrNotFound) {
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
		o := Owner{Subject: "carol"}
		short, _ := st.Create(ctx, o, fresh(now, time.Minute), 10, now)
		long, _ := st.Create(ctx, o, fresh(now, time.Hour), 10, now)
		if _, err := st.Get(ctx, o, short.ID, now.Add(time.Minute-time.Millisecond)); err != nil {
			t.Fatalf("expired early: %v", err)
		}
		end := now.Add(time.Minute)
		if _, err := st.Get(ctx, o, short.ID, end); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get at expiry: %v", err)
		}
		if _, err := st.Update(ctx, o, short.ID, nil, nil, end); !errors.Is(err, ErrNotFound) {
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

	t.Run("max per owner", func(t *testing.T) {
		st := newStore(t)
		o := Owner{App: "/a", Subject: "dave"}
		for i := 0; i < 3; i++ {
			if _, err := st.Create(ctx, o, fresh(now, time.Minute), 3, now); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.Create(ctx, o, fresh(now, time.Minute), 3, now); !errors.Is(err, ErrTooManySessions) {
			t.Fatalf("fourth: %v", err)
		}
		if _, err := st.Create(ctx, Owner{App: "/a", Subject: "erin"}, fresh(now, time.Minute), 3, now); err != nil {
			t.Fatalf("another account: %v", err)
		}
		later := now.Add(time.Minute)
		if _, err := st.Create(ctx, o, fresh(later, time.Minute), 3, later); err != nil {
			t.Fatalf("expired sessions still counted: %v", err)
		}
	})

	t.Run("concurrent if-match", func(t *testing.T) {
		st := newStore(t)
		o := Owner{Subject: "race"}
		s, _ := st.Create(ctx, o, Session{ID: newSessionID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: json.RawMessage(`{"n":0}`)}, 10, now)
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
					switch _, err := st.Update(ctx, o, s.ID, next, &ifMatch{tags: []string{cur.ETag()}}, now); {
					case err == nil:
						acked.Add(1)
					case !errors.Is(err, ErrPreconditionFailed):
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

func TestMemoryStoreContract(t *testing.T) {
	testStoreContract(t, func(t *testing.T) Store {
		ctx, _ := newTestContext(t)
		m := &MemoryStore{Name: "contract-" + t.Name()}
		if err := m.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Cleanup() })
		return m
	})
}
