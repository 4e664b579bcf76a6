package memory

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// sessionTable is the in-process session storage, split into shards by owner
// so that writers for different accounts rarely meet and the sweeper never
// holds more than one shard's lock.
type sessionTable struct {
	name string // in the pool of tables
	// keep is how long the table is kept once no config holds it (the
	// keep setting of the config that provisioned it last), in ns.
	keep   atomic.Int64
	seed   maphash.Seed
	live   atomic.Int64 // sessions held, expired or not, until removed
	bytes  atomic.Int64 // storedSize of those sessions
	shards [256]tableShard
	// afterShard, when set (tests), runs after the sweep has released a
	// shard's lock.
	afterShard func(shard int)
}

type tableShard struct {
	mu     sync.RWMutex
	owners map[store.Owner]map[string]*store.Session
	// idem remembers creates made under an Idempotency-Key, in the shard
	// of their owner; nil until the first.
	idem map[idemKey]*idemRecord
}

// idemKey is one owner's Idempotency-Key.
type idemKey struct {
	owner store.Owner
	key   string
}

// idemRecord is the first create under a key: the request's fingerprint
// and the session as it was created.
type idemRecord struct {
	fingerprint string
	created     store.Session
	until       time.Time
}

// idemSize is what a record counts against max_bytes.
func idemSize(k idemKey, r *idemRecord) int64 {
	return storedSize(k.owner, &r.created) + int64(len(k.key)+len(r.fingerprint))
}

func newSessionTable() *sessionTable {
	t := &sessionTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].owners = map[store.Owner]map[string]*store.Session{}
	}
	return t
}

// Destruct implements caddy.Destructor: no config holds the table any
// more. It is kept for its keep duration, in case one names it again.
func (t *sessionTable) Destruct() error {
	keepTable(t, time.Duration(t.keep.Load()))
	return nil
}

func (t *sessionTable) shard(owner store.Owner) *tableShard {
	return &t.shards[maphash.Comparable(t.seed, owner)%uint64(len(t.shards))]
}

// tableLimits are the table-wide caps a create is held to.
type tableLimits struct {
	live  int   // sessions
	bytes int64 // storedSize
}

// storedSize is what a session counts against max_bytes.
func storedSize(owner store.Owner, s *store.Session) int64 {
	return int64(sessionOverhead+len(owner.App)+len(owner.Issuer)+len(owner.Subject)+len(s.ID)) + payloadCost(len(s.Payload))
}

// payloadCost is the heap a payload of n bytes takes: Go rounds a small
// allocation up to its size class (at most an eighth more) and a large one
// (over 32 KiB) up to whole 8 KiB pages.
func payloadCost(n int) int64 {
	if n > 32<<10 {
		return int64(n+8191) &^ 8191
	}
	return int64(n + n/8)
}

// forget accounts for a session that has left the table.
func (t *sessionTable) forget(owner store.Owner, s *store.Session) {
	t.live.Add(-1)
	t.bytes.Add(-storedSize(owner, s))
}

func (t *sessionTable) create(owner store.Owner, s store.Session, maxPerOwner int, limits tableLimits, now time.Time) (store.Session, error) {
	return t.createOnce(owner, s, maxPerOwner, nil, limits, now)
}

// createOnce is create under an Idempotency-Key (when idem is not nil): the
// key is looked up, and the create remembered, under the same lock.
func (t *sessionTable) createOnce(owner store.Owner, s store.Session, maxPerOwner int, idem *store.Idempotency, limits tableLimits, now time.Time) (store.Session, error) {
	tag := store.NewTag() // outside the lock
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var ik idemKey
	if idem != nil {
		ik = idemKey{owner, idem.Key}
		if r, ok := sh.idem[ik]; ok && now.Before(r.until) {
			if r.fingerprint != idem.Fingerprint {
				return store.Session{}, store.ErrIdempotencyMismatch
			}
			return r.created, nil
		}
	}
	s, err := t.createLocked(sh, owner, s, tag, maxPerOwner, limits, now)
	if err != nil || idem == nil {
		return s, err
	}
	if old, ok := sh.idem[ik]; ok { // expired, not yet swept
		t.bytes.Add(-idemSize(ik, old))
	}
	if sh.idem == nil {
		sh.idem = map[idemKey]*idemRecord{}
	}
	r := &idemRecord{fingerprint: idem.Fingerprint, created: s, until: now.Add(idem.TTL)}
	sh.idem[ik] = r
	t.bytes.Add(idemSize(ik, r))
	return s, nil
}

// createLocked creates s under sh's held write lock.
func (t *sessionTable) createLocked(sh *tableShard, owner store.Owner, s store.Session, tag string, maxPerOwner int, limits tableLimits, now time.Time) (store.Session, error) {
	sessions := sh.owners[owner]
	for id, old := range sessions {
		if old.Expired(now) {
			delete(sessions, id)
			t.forget(owner, old)
		}
	}
	if len(sessions) >= maxPerOwner {
		return store.Session{}, store.ErrTooManySessions
	}
	// The caps are checked and the counts raised under this shard's lock
	// only: concurrent writes in other shards can pass them together by at
	// most one session each, a bounded overshoot that keeps writes
	// lock-free across shards.
	size := storedSize(owner, &s)
	if t.live.Load() >= int64(limits.live) || t.bytes.Load()+size > limits.bytes {
		return store.Session{}, store.ErrStoreFull
	}
	if sessions == nil {
		sessions = map[string]*store.Session{}
		sh.owners[owner] = sessions
	}
	if _, taken := sessions[s.ID]; taken {
		// 128 random bits never collide in practice; refuse rather than
		// overwrite if they ever do.
		return store.Session{}, fmt.Errorf("session id collision")
	}
	s.Revision = 1
	s.Tag = tag
	stored := s
	sessions[s.ID] = &stored
	t.live.Add(1)
	t.bytes.Add(size)
	return s, nil
}

func (t *sessionTable) list(owner store.Owner, now time.Time) []store.Session {
	sh := t.shard(owner)
	sh.mu.RLock()
	sessions := sh.owners[owner]
	out := make([]store.Session, 0, len(sessions))
	for _, s := range sessions {
		if !s.Expired(now) {
			out = append(out, *s)
		}
	}
	sh.mu.RUnlock()
	store.Sort(out)
	return out
}

func (t *sessionTable) get(owner store.Owner, id string, now time.Time) (store.Session, error) {
	sh := t.shard(owner)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	s, ok := sh.owners[owner][id]
	if !ok || s.Expired(now) {
		return store.Session{}, store.ErrNotFound
	}
	return *s, nil
}

// liveSession returns the owner's live session id under the shard's held
// write lock, removing it if it has expired.
func (t *sessionTable) liveSession(sh *tableShard, owner store.Owner, id string, now time.Time) (*store.Session, bool) {
	sessions := sh.owners[owner]
	s, ok := sessions[id]
	if !ok {
		return nil, false
	}
	if s.Expired(now) {
		delete(sessions, id)
		t.forget(owner, s)
		return nil, false
	}
	return s, true
}

func (t *sessionTable) update(owner store.Owner, id string, payload json.RawMessage, cond *store.IfMatch, maxBytes int64, now time.Time) (store.Session, error) {
	tag := store.NewTag() // outside the lock
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := t.liveSession(sh, owner, id, now)
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	if cond != nil && !cond.Matches(s.ETag()) { // no ETag made without If-Match
		return store.Session{}, store.ErrPreconditionFailed
	}
	if payload != nil {
		grow := payloadCost(len(payload)) - payloadCost(len(s.Payload))
		if grow > 0 && t.bytes.Load()+grow > maxBytes {
			return store.Session{}, store.ErrStoreFull
		}
		t.bytes.Add(grow)
		s.Payload = payload
	}
	s.LastActive = now
	s.Revision++
	s.Tag = tag
	return *s, nil
}

func (t *sessionTable) remove(owner store.Owner, id string, cond *store.IfMatch, now time.Time) error {
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := t.liveSession(sh, owner, id, now)
	if !ok {
		return store.ErrNotFound
	}
	if cond != nil && !cond.Matches(s.ETag()) { // no ETag made without If-Match
		return store.ErrPreconditionFailed
	}
	sessions := sh.owners[owner]
	delete(sessions, id)
	t.forget(owner, s)
	if len(sessions) == 0 {
		delete(sh.owners, owner)
	}
	return nil
}

// removeAll removes every session of owner but except, under the shard's
// lock, and counts the live ones it removed.
func (t *sessionTable) removeAll(owner store.Owner, except string, now time.Time) int {
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sessions := sh.owners[owner]
	n := 0
	for id, s := range sessions {
		if id == except {
			continue
		}
		if !s.Expired(now) {
			n++
		}
		delete(sessions, id)
		t.forget(owner, s)
	}
	if len(sessions) == 0 {
		delete(sh.owners, owner)
	}
	return n
}

// sweep removes expired sessions, one shard at a time: no lock is held
// across shards, so requests go on during a sweep of any size.
func (t *sessionTable) sweep(now time.Time) (removed int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for k, r := range sh.idem {
			if !now.Before(r.until) {
				delete(sh.idem, k)
				t.bytes.Add(-idemSize(k, r))
			}
		}
		for owner, sessions := range sh.owners {
			for id, s := range sessions {
				if s.Expired(now) {
					delete(sessions, id)
					t.bytes.Add(-storedSize(owner, s))
					removed++
				}
			}
			if len(sessions) == 0 {
				delete(sh.owners, owner)
			}
		}
		sh.mu.Unlock()
		if t.afterShard != nil {
			t.afterShard(i)
		}
	}
	t.live.Add(int64(-removed))
	return removed
}

// countByApp counts the sessions of each app, one shard at a time.
func (t *sessionTable) countByApp() map[string]int {
	apps := map[string]int{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for owner, sessions := range sh.owners {
			apps[owner.App] += len(sessions)
		}
		sh.mu.RUnlock()
	}
	return apps
}
