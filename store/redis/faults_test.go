package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// Faults of a real Redis, one test each, reproduced first on the version
// before the fix.

// TestETagSurvivesRollback: Redis loses acknowledged writes (a restart from
// an older snapshot, a failover to a lagging replica), simulated by
// restoring a session's earlier DUMP. The next write makes a state whose
// revision equals a lost one; a client holding the lost write's ETag must
// not match it. With ETags derived from the revision it did ("2" again).
func TestETagSurvivesRollback(t *testing.T) {
	st := newTestStore(t, redistest.SharedURL(t), fmt.Sprintf("ownid_rollback:%d:", time.Now().UnixNano()))
	ctx := context.Background()
	o := store.Owner{App: "/r", Subject: "rollback"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: json.RawMessage(`{"v":1}`)}, 10, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	prefix, _ := st.ownerKeys(o)
	key := prefix + s.ID
	snapshot, err := st.client.Dump(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	lost, err := st.Update(ctx, o, s.ID, json.RawMessage(`{"v":"lost"}`), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	// The write is lost: the session is back to its state before it.
	if err := st.client.RestoreReplace(ctx, key, 0, snapshot).Err(); err != nil {
		t.Fatal(err)
	}
	st.client.PExpireAt(ctx, key, now.Add(time.Hour))
	other, err := st.Update(ctx, o, s.ID, json.RawMessage(`{"v":"other"}`), nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if other.Revision != lost.Revision {
		t.Fatalf("the rollback did not repeat the revision (%d, %d): the test proves nothing", other.Revision, lost.Revision)
	}
	if other.ETag() == lost.ETag() {
		t.Fatalf("ETag %s names two different contents", other.ETag())
	}
	_, err = st.Update(ctx, o, s.ID, json.RawMessage(`{"v":"stale writer"}`), &store.IfMatch{Tags: []string{lost.ETag()}}, now)
	if !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("a stale If-Match of a lost write: %v, want a failed precondition", err)
	}
	if got, _ := st.Get(ctx, o, s.ID, now); string(got.Payload) != `{"v":"other"}` {
		t.Fatalf("the stale writer overwrote the session: %s", got.Payload)
	}
}

// faultStore is a store on its own throwaway Redis, with timeout.
func faultStore(t *testing.T, timeout time.Duration, allowEviction bool) (*Store, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t, false)
	st := &Store{URL: srv.URL(), KeyPrefix: "fault:", Timeout: caddy.Duration(timeout), AllowEviction: allowEviction}
	if err := st.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Cleanup() })
	return st, srv
}

// TestSleepingRedisOutcome: Redis stops answering (DEBUG SLEEP) after the
// commands were sent. The writes are answered "outcome unknown", not "nothing
// written", and Redis does run them when it wakes; a create sent again with
// its Idempotency-Key gets the session the first attempt made, so the
// client ends with one session, not two. Reads are "unavailable".
func TestSleepingRedisOutcome(t *testing.T) {
	st, srv := faultStore(t, 300*time.Millisecond, false)
	ctx := context.Background()
	o := store.Owner{App: "/z", Subject: "sleeper"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: json.RawMessage(`{"v":1}`)}, 10, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	// The scripts are loaded (when the store was provisioned), so what is
	// sent is run: an EVALSHA Redis did not know would fail harmlessly.
	if n, _ := st.client.ScriptExists(ctx, updateScript.Hash(), createScript.Hash()).Result(); !slices.Equal(n, []bool{true, true}) {
		t.Fatalf("scripts not preloaded: %v", n)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(srv.URL(), "/0"), "redis://")})
	defer admin.Close()
	slept := make(chan error, 1)
	go func() { slept <- admin.Do(ctx, "DEBUG", "SLEEP", "3").Err() }()
	time.Sleep(300 * time.Millisecond) // DEBUG SLEEP has begun

	_, err = st.Update(ctx, o, s.ID, json.RawMessage(`{"v":2}`), &store.IfMatch{Tags: []string{s.ETag()}}, now)
	if !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("update while Redis sleeps: %v, want outcome unknown", err)
	}
	key := &store.Idempotency{Key: "retry-me", Fingerprint: "body", TTL: time.Hour}
	if _, err = st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 10, key, now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("create while Redis sleeps: %v, want outcome unknown", err)
	}
	if _, err = st.Get(ctx, o, s.ID, now); err == nil || errors.Is(err, store.ErrOutcomeUnknown) || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read while Redis sleeps: %v, want unavailable", err)
	}
	if err := <-slept; err != nil {
		t.Fatal(err)
	}
	// Redis ran the queued writes when it woke: "may have been applied"
	// was the honest answer.
	got, err := st.Get(ctx, o, s.ID, now)
	if err != nil || string(got.Payload) != `{"v":2}` {
		t.Fatalf("after the sleep: %s %v", got.Payload, err)
	}
	retried, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 10, key, now)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := st.List(ctx, o, now)
	if len(list) != 2 || !slices.ContainsFunc(list, func(x store.Session) bool { return x.ID == retried.ID }) {
		t.Fatalf("after the retry: %d sessions (want the first and the one the sleeping create made), retried %s", len(list), retried.ID)
	}
}

// TestMaxmemoryBoundsTheStore: with maxmemory and noeviction, a full Redis
// refuses creates and growing updates as a whole (store-full, nothing
// written) and memory stays at the limit; deletes still go through. Without
// the scripts' flags, scripts whose first command frees memory were let
// through and Redis grew past its limit.
func TestMaxmemoryBoundsTheStore(t *testing.T) {
	st, _ := faultStore(t, 2*time.Second, false)
	ctx := context.Background()
	const limit = 3 << 20
	if err := st.client.ConfigSet(ctx, "maxmemory", fmt.Sprint(limit)).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	payload := json.RawMessage(`{"p":"` + strings.Repeat("x", 8<<10) + `"}`)
	var kept []store.Session
	var owners []store.Owner
	full := 0
	for i := range 3000 {
		o := store.Owner{App: "/m", Subject: fmt.Sprint("u", i)}
		s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: payload}, 10, nil, now)
		switch {
		case errors.Is(err, store.ErrStoreFull):
			full++
		case err != nil:
			t.Fatalf("create %d: %v", i, err)
		default:
			kept = append(kept, s)
			owners = append(owners, o)
		}
	}
	used, err := st.client.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	var usedBytes int64
	fmt.Sscanf(used[strings.Index(used, "used_memory:")+len("used_memory:"):], "%d", &usedBytes)
	t.Logf("%d creates stored, %d refused as full; used_memory %d of %d", len(kept), full, usedBytes, limit)
	if full == 0 || len(kept) == 0 {
		t.Fatalf("the limit was never reached (%d stored): the test proves nothing", len(kept))
	}
	// One script's writes may pass the limit (Redis checks before a
	// script, not within it): a payload and its bookkeeping, well under
	// 64 KiB here.
	if usedBytes > limit+64<<10 {
		t.Fatalf("used_memory %d passed maxmemory %d", usedBytes, limit)
	}
	// Deletes free memory even at the limit; then creates go through again.
	for i := range 20 {
		if err := st.Delete(ctx, owners[i], kept[i].ID, nil, now); err != nil {
			t.Fatalf("delete at the limit: %v", err)
		}
	}
	if _, err := st.Create(ctx, store.Owner{Subject: "after"}, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: payload}, 10, nil, now); err != nil {
		t.Fatalf("create after deletes: %v", err)
	}
}

// TestEvictionPolicy: a Redis that evicts keys is refused at load, naming
// its policy, unless allow_eviction; with it, sessions whose keys were
// evicted leave the index on reads and no longer count toward
// max_sessions.
func TestEvictionPolicy(t *testing.T) {
	srv := redistest.Start(t, false)
	admin := goredis.NewClient(&goredis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(srv.URL(), "/0"), "redis://")})
	defer admin.Close()
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	st := &Store{URL: srv.URL(), KeyPrefix: "evict:"}
	err := st.Provision(newTestContext(t))
	if err == nil || !strings.Contains(err.Error(), "allkeys-lru") || !strings.Contains(err.Error(), "allow_eviction") {
		t.Fatalf("an evicting Redis loaded: %v", err)
	}
	st.Cleanup()
	st = &Store{URL: srv.URL(), KeyPrefix: "evict:", AllowEviction: true}
	if err := st.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Cleanup() })
	o := store.Owner{App: "/e", Subject: "evicted"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := createSessions(t, st, o, 3, 3, now)
	// Redis evicts two sessions' keys (as allkeys-lru would under pressure).
	prefix, index := st.ownerKeys(o)
	admin.Del(ctx, prefix+ids[0], prefix+ids[1])
	if l, _ := st.List(ctx, o, now); len(l) != 1 || l[0].ID != ids[2] {
		t.Fatalf("list after eviction: %+v", l)
	}
	if n := admin.ZCard(ctx, index).Val(); n != 1 {
		t.Fatalf("the index holds %d ids after a read, want the 1 live session", n)
	}
	admin.ZAdd(ctx, index, goredis.Z{Score: float64(now.Add(time.Hour).UnixMilli()), Member: ids[0]}) // dangling again
	for range 2 {
		if _, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 3, nil, now); err != nil {
			t.Fatalf("create after eviction (max 3, 1 live): %v", err)
		}
	}
	if _, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 3, nil, now); !errors.Is(err, store.ErrTooManySessions) {
		t.Fatalf("fourth live session: %v", err)
	}
}
