package storetest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
	"github.com/ownid-sessions/caddy-ownid-sessions/store/storetest"
)

// mapStore is about the smallest store.Store there is: a map behind one
// mutex, written against the public API only, as a store written outside
// this module would be. That it passes storetest.Run shows that the API is
// enough to implement a store. Made into a Caddy module (CaddyModule with
// an ID in http.ownid_sessions.stores), a handler could load it.
type mapStore struct {
	mu       sync.Mutex
	sessions map[store.Owner]map[string]store.Session
	// keys remembers creates under an Idempotency-Key (never forgotten:
	// this store is an example, not a product).
	keys map[idemKey]idemRecord
}

type idemKey struct {
	owner store.Owner
	key   string
}

type idemRecord struct {
	fingerprint string
	created     store.Session
	until       time.Time
}

func newMapStore() *mapStore {
	return &mapStore{sessions: map[store.Owner]map[string]store.Session{}, keys: map[idemKey]idemRecord{}}
}

func (m *mapStore) Create(_ context.Context, owner store.Owner, s store.Session, maxPerOwner int, idem *store.Idempotency, now time.Time) (store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if idem != nil {
		if r, ok := m.keys[idemKey{owner, idem.Key}]; ok && now.Before(r.until) {
			if r.fingerprint != idem.Fingerprint {
				return store.Session{}, store.ErrIdempotencyMismatch
			}
			return r.created, nil
		}
	}
	live := 0
	for _, old := range m.sessions[owner] {
		if !old.Expired(now) {
			live++
		}
	}
	if live >= maxPerOwner {
		return store.Session{}, store.ErrTooManySessions
	}
	if m.sessions[owner] == nil {
		m.sessions[owner] = map[string]store.Session{}
	}
	s.Payload = bytes.Clone(s.Payload) // the caller's buffer is not ours to keep
	s.Revision, s.Tag = 1, store.NewTag()
	m.sessions[owner][s.ID] = s
	if idem != nil {
		m.keys[idemKey{owner, idem.Key}] = idemRecord{idem.Fingerprint, s, now.Add(idem.TTL)}
	}
	return s, nil
}

func (m *mapStore) List(_ context.Context, owner store.Owner, now time.Time) ([]store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.Session{}
	for _, s := range m.sessions[owner] {
		if !s.Expired(now) {
			out = append(out, s)
		}
	}
	store.Sort(out)
	return out, nil
}

func (m *mapStore) Get(_ context.Context, owner store.Owner, id string, now time.Time) (store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live(owner, id, now)
}

// live returns one of owner's live sessions; m.mu is held.
func (m *mapStore) live(owner store.Owner, id string, now time.Time) (store.Session, error) {
	s, ok := m.sessions[owner][id]
	if !ok || s.Expired(now) {
		return store.Session{}, store.ErrNotFound
	}
	return s, nil
}

func (m *mapStore) Update(_ context.Context, owner store.Owner, id string, payload json.RawMessage, ifMatch *store.IfMatch, now time.Time) (store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.live(owner, id, now)
	if err != nil {
		return store.Session{}, err
	}
	if !ifMatch.Matches(s.ETag()) {
		return store.Session{}, store.ErrPreconditionFailed
	}
	if payload != nil {
		s.Payload = bytes.Clone(payload)
	}
	s.LastActive = now
	s.Revision++
	s.Tag = store.NewTag()
	m.sessions[owner][id] = s
	return s, nil
}

func (m *mapStore) DeleteAll(_ context.Context, owner store.Owner, except string, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.sessions[owner] {
		if id == except {
			continue
		}
		if !s.Expired(now) {
			n++
		}
		delete(m.sessions[owner], id)
	}
	return n, nil
}

func (m *mapStore) Delete(_ context.Context, owner store.Owner, id string, ifMatch *store.IfMatch, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.live(owner, id, now)
	if err != nil {
		return err
	}
	if !ifMatch.Matches(s.ETag()) {
		return store.ErrPreconditionFailed
	}
	delete(m.sessions[owner], id)
	return nil
}

// Usage and SessionsByApp make it a store.Counter, so the admin endpoint
// and the metrics would count its sessions.
func (m *mapStore) Usage() store.Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := store.Usage{Name: "example"}
	for _, sessions := range m.sessions {
		u.Sessions += int64(len(sessions))
	}
	return u
}

func (m *mapStore) SessionsByApp() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	apps := map[string]int{}
	for owner, sessions := range m.sessions {
		apps[owner.App] += len(sessions)
	}
	return apps
}

// Describe makes it a store.Describer, for the admin endpoint.
func (m *mapStore) Describe() string { return "map" }

// Interface guards
var (
	_ store.Store     = (*mapStore)(nil)
	_ store.Counter   = (*mapStore)(nil)
	_ store.Describer = (*mapStore)(nil)
)

func TestExampleStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newMapStore() })
}

func BenchmarkExampleStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) store.Store { return newMapStore() })
}
