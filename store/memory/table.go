package memory

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// sessionTable is the in-process session storage, split into shards by owner
// so that writers for different accounts rarely meet and the sweeper never
// holds more than one shard's lock.
//
// Each shard keeps one flat map of its sessions keyed by (owner, id) in
// fixed-size form (sessionKey), so that finding a session is one hash probe
// whose key is compared in place, with no string of the owner or the id to
// load; beside it, each owner's entry lists its sessions (for List,
// DeleteAll and the per-owner cap).
type sessionTable struct {
	name string // in the pool of tables
	// keep is how long the table is kept once no config holds it (the
	// keep setting of the config that provisioned it last), in ns.
	keep   atomic.Int64
	live   atomic.Int64 // sessions held, expired or not, until removed
	bytes  atomic.Int64 // storedSize of those sessions
	shards [256]tableShard
	// afterShard, when set (tests), runs after the sweep has released a
	// shard's lock.
	afterShard func(shard int)
}

type tableShard struct {
	mu       sync.RWMutex
	sessions map[sessionKey]*store.Session
	owners   map[ownerDigest]*ownerEntry
	// idem remembers creates made under an Idempotency-Key, in the shard
	// of their owner; nil until the first.
	idem map[idemKey]*idemRecord
}

// ownerDigest names an owner in the table: the first 120 bits of SHA-256
// over its length-prefixed parts (Owner.AppendBinary). Two owners share a
// digest only if SHA-256 collides in those bits, which no one can bring
// about, let alone for an account of their choosing. (120 bits, so that a
// sessionKey is 32 bytes.)
type ownerDigest [15]byte

func digestOf(owner store.Owner) ownerDigest {
	var buf [192]byte
	b, _ := owner.AppendBinary(buf[:0])
	sum := sha256.Sum256(b)
	return ownerDigest(sum[:15])
}

// idKey is a session id in fixed size: the 16 bytes an id of NewID's form
// (22 characters of unpadded base64url, one spelling per value) stands
// for, or, for any other id, the first 128 bits of SHA-256 over it, with
// hashed set; a session found under a hashed key is also compared with
// the id itself.
type idKey struct {
	id     [16]byte
	hashed bool
}

var strictBase64 = base64.RawURLEncoding.Strict()

func idKeyOf(id string) idKey {
	var k idKey
	if len(id) == 22 {
		if n, err := strictBase64.Decode(k.id[:], []byte(id)); err == nil && n == 16 {
			return k
		}
	}
	sum := sha256.Sum256([]byte(id))
	copy(k.id[:], sum[:16])
	k.hashed = true
	return k
}

// sessionKey is one session of one owner, in 32 bytes: the owner's digest,
// then the idKey (its hashed flag first, so that nothing is padded).
type sessionKey struct {
	owner  ownerDigest
	hashed bool
	id     [16]byte
}

func keyOf(d ownerDigest, id idKey) sessionKey {
	return sessionKey{d, id.hashed, id.id}
}

// ownerEntry is an owner with sessions in the shard, and those sessions
// (the same records the shard's map holds).
type ownerEntry struct {
	owner    store.Owner
	sessions []*store.Session
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
	t := &sessionTable{}
	for i := range t.shards {
		t.shards[i].sessions = map[sessionKey]*store.Session{}
		t.shards[i].owners = map[ownerDigest]*ownerEntry{}
	}
	return t
}

// Destruct implements caddy.Destructor: no config holds the table any
// more. It is kept for its keep duration, in case one names it again.
func (t *sessionTable) Destruct() error {
	keepTable(t, time.Duration(t.keep.Load()))
	return nil
}

// shard is where the owner of digest d keeps its sessions: the digest's
// first byte is uniform, as SHA-256's bytes are.
func (t *sessionTable) shard(d ownerDigest) *tableShard {
	return &t.shards[d[0]]
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

// prune removes from the owner of digest d (entry e) every session that
// goes says must go, in one pass over its list (from the shard's map too,
// and accounted for), and the entry once none is left; sh's write lock is
// held. It returns how many it removed, and how many of those were live
// at now.
func (t *sessionTable) prune(sh *tableShard, d ownerDigest, e *ownerEntry, now time.Time, goes func(*store.Session) bool) (removed, live int) {
	kept := e.sessions[:0]
	for _, s := range e.sessions {
		if !goes(s) {
			kept = append(kept, s)
			continue
		}
		delete(sh.sessions, keyOf(d, idKeyOf(s.ID)))
		t.forget(e.owner, s)
		removed++
		if !s.Expired(now) {
			live++
		}
	}
	clear(e.sessions[len(kept):])
	e.sessions = kept
	if len(kept) == 0 {
		delete(sh.owners, d)
	}
	return removed, live
}

// unlink removes the session s of the owner of digest d, as prune does.
func (t *sessionTable) unlink(sh *tableShard, d ownerDigest, s *store.Session, now time.Time) {
	t.prune(sh, d, sh.owners[d], now, func(x *store.Session) bool { return x == s })
}

// lookup finds the session id of the owner of digest d in sh, under a held
// lock.
func lookup(sh *tableShard, d ownerDigest, id string) (*store.Session, bool) {
	k := keyOf(d, idKeyOf(id))
	s, ok := sh.sessions[k]
	if ok && k.hashed && s.ID != id {
		ok = false // two ids whose SHA-256 share 128 bits
	}
	return s, ok
}

func (t *sessionTable) create(owner store.Owner, s store.Session, maxPerOwner int, limits tableLimits, now time.Time) (store.Session, error) {
	return t.createOnce(owner, s, maxPerOwner, nil, limits, now)
}

// createOnce is create under an Idempotency-Key (when idem is not nil): the
// key is looked up, and the create remembered, under the same lock.
func (t *sessionTable) createOnce(owner store.Owner, s store.Session, maxPerOwner int, idem *store.Idempotency, limits tableLimits, now time.Time) (store.Session, error) {
	tag := store.NewTag() // outside the lock
	d := digestOf(owner)
	sh := t.shard(d)
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
	s, err := t.createLocked(sh, d, owner, s, tag, maxPerOwner, limits, now)
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
func (t *sessionTable) createLocked(sh *tableShard, d ownerDigest, owner store.Owner, s store.Session, tag string, maxPerOwner int, limits tableLimits, now time.Time) (store.Session, error) {
	e := sh.owners[d]
	if e != nil {
		t.prune(sh, d, e, now, func(old *store.Session) bool { return old.Expired(now) })
		if len(e.sessions) == 0 {
			e = nil // the entry has gone with them
		}
	}
	if e != nil && len(e.sessions) >= maxPerOwner || maxPerOwner <= 0 {
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
	k := keyOf(d, idKeyOf(s.ID))
	if _, taken := sh.sessions[k]; taken {
		// 128 random bits never collide in practice; refuse rather than
		// overwrite if they ever do.
		return store.Session{}, fmt.Errorf("session id collision")
	}
	if e == nil {
		e = &ownerEntry{owner: owner}
		sh.owners[d] = e
	}
	s.Revision = 1
	s.Tag = tag
	stored := s
	sh.sessions[k] = &stored
	e.sessions = append(e.sessions, &stored)
	t.live.Add(1)
	t.bytes.Add(size)
	return s, nil
}

func (t *sessionTable) list(owner store.Owner, now time.Time) []store.Session {
	d := digestOf(owner)
	sh := t.shard(d)
	sh.mu.RLock()
	var out []store.Session
	if e := sh.owners[d]; e != nil {
		out = make([]store.Session, 0, len(e.sessions))
		for _, s := range e.sessions {
			if !s.Expired(now) {
				out = append(out, *s)
			}
		}
	}
	sh.mu.RUnlock()
	store.Sort(out)
	if out == nil {
		out = []store.Session{}
	}
	return out
}

func (t *sessionTable) get(owner store.Owner, id string, now time.Time) (store.Session, error) {
	d := digestOf(owner)
	sh := t.shard(d)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	s, ok := lookup(sh, d, id)
	if !ok || s.Expired(now) {
		return store.Session{}, store.ErrNotFound
	}
	return *s, nil
}

// liveSession returns the owner's live session id under the shard's held
// write lock, removing it if it has expired.
func (t *sessionTable) liveSession(sh *tableShard, d ownerDigest, id string, now time.Time) (*store.Session, bool) {
	s, ok := lookup(sh, d, id)
	if !ok {
		return nil, false
	}
	if s.Expired(now) {
		t.unlink(sh, d, s, now)
		return nil, false
	}
	return s, true
}

func (t *sessionTable) update(owner store.Owner, id string, payload json.RawMessage, cond *store.IfMatch, maxBytes int64, now time.Time) (store.Session, error) {
	tag := store.NewTag() // outside the lock
	d := digestOf(owner)
	sh := t.shard(d)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := t.liveSession(sh, d, id, now)
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
	d := digestOf(owner)
	sh := t.shard(d)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := t.liveSession(sh, d, id, now)
	if !ok {
		return store.ErrNotFound
	}
	if cond != nil && !cond.Matches(s.ETag()) { // no ETag made without If-Match
		return store.ErrPreconditionFailed
	}
	t.unlink(sh, d, s, now)
	return nil
}

// removeAll removes every session of owner but except, under the shard's
// lock, and counts the live ones it removed.
func (t *sessionTable) removeAll(owner store.Owner, except string, now time.Time) int {
	d := digestOf(owner)
	sh := t.shard(d)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.owners[d]
	if e == nil {
		return 0
	}
	_, live := t.prune(sh, d, e, now, func(s *store.Session) bool { return s.ID != except })
	return live
}

// sweep removes expired sessions, one shard at a time: no lock is held
// across shards, so requests go on during a sweep of any size. A shard is
// read under its read lock, which lookups share, and write-locked only when
// something in it is due, for just the removals (each checked again:
// an update may have come in between). An owner's list is mended once for
// all its sessions that go.
func (t *sessionTable) sweep(now time.Time) (removed int) {
	due := map[ownerDigest]struct{}{} // the owners of a shard with sessions to remove
	expired := func(s *store.Session) bool { return s.Expired(now) }
	for i := range t.shards {
		sh := &t.shards[i]
		clear(due)
		idemDue := false
		sh.mu.RLock()
		for k, s := range sh.sessions {
			if s.Expired(now) {
				due[k.owner] = struct{}{}
			}
		}
		for _, r := range sh.idem {
			if !now.Before(r.until) {
				idemDue = true
				break
			}
		}
		sh.mu.RUnlock()
		if len(due) > 0 || idemDue {
			sh.mu.Lock()
			for k, r := range sh.idem {
				if !now.Before(r.until) {
					delete(sh.idem, k)
					t.bytes.Add(-idemSize(k, r))
				}
			}
			for d := range due {
				if e := sh.owners[d]; e != nil {
					n, _ := t.prune(sh, d, e, now, expired)
					removed += n
				}
			}
			sh.mu.Unlock()
		}
		if t.afterShard != nil {
			t.afterShard(i)
		}
	}
	return removed
}

// countByApp counts the sessions of each app, one shard at a time.
func (t *sessionTable) countByApp() map[string]int {
	apps := map[string]int{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, e := range sh.owners {
			apps[e.owner.App] += len(e.sessions)
		}
		sh.mu.RUnlock()
	}
	return apps
}
