package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

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
	s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: json.RawMessage(`{"v":1}`)}, 10, now)
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
