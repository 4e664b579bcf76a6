package ownidsessions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

func init() {
	caddy.RegisterModule(MemoryStore{})
}

// memoryTables holds the session tables by name. A table outlives the config
// that made it as long as a newer config uses the same name, so sessions
// survive `caddy reload`.
var memoryTables = caddy.NewUsagePool()

const (
	defaultMemoryStoreName = "default"
	defaultSweepInterval   = time.Minute
	defaultMaxLiveSessions = 1_000_000
	defaultMaxBytes        = 1 << 30

	// sessionOverhead is what the table holds for a session besides the
	// bytes of its owner, id and payload: the Session value, its map
	// entries and, in the worst case of one session per owner, the owner's
	// own map. Measured by TestStoredBytesBoundTheHeap (about 435 bytes
	// for one session per owner); rounded up so that the budget bounds
	// the heap rather than estimates it.
	sessionOverhead = 512
)

// MemoryStore keeps sessions in this Caddy process. They survive config
// reloads, not restarts, and are not shared with other Caddy instances.
type MemoryStore struct {
	// Handlers that name the same store share its sessions; give two sites
	// different names to keep their sessions apart even for an identical
	// app prefix and account. Default: "default".
	Name string `json:"name,omitempty"`

	// How often expired sessions are removed from memory. Expired sessions
	// are invisible from the moment they expire whatever this says.
	// Default: 1m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`

	// The most sessions the table holds, for all apps and accounts
	// together, so memory stays bounded whatever clients do: beyond it,
	// creating a session gets 503 while reads, updates and deletes go on.
	// Sessions that expired count until they are swept. Default: 1000000.
	MaxLiveSessions int `json:"max_live_sessions,omitempty"`

	// The most bytes the table holds, for all apps and accounts together:
	// each session counts its payload (rounded up as Go's allocator rounds
	// it), id and owner (app, issuer, subject) plus a fixed overhead of 512
	// bytes. A create, or an update
	// that grows a payload, that would pass it gets 503 and writes
	// nothing; deletes and expiry make room. Sessions that expired count
	// until they are swept. Default: 1 GiB.
	MaxBytes int64 `json:"max_bytes,omitempty"`

	table *sessionTable
	// sweeperDone is closed when this config's sweeper has stopped.
	sweeperDone chan struct{}
}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.ownid_sessions.stores.memory",
		New: func() caddy.Module { return new(MemoryStore) },
	}
}

// Provision takes the named table from the pool and starts the sweeper, which
// stops with the config.
func (m *MemoryStore) Provision(ctx caddy.Context) error {
	if m.Name == "" {
		m.Name = defaultMemoryStoreName
	}
	if m.SweepInterval == 0 {
		m.SweepInterval = caddy.Duration(defaultSweepInterval)
	}
	if m.SweepInterval < 0 {
		return fmt.Errorf("sweep_interval: must be positive, got %s", time.Duration(m.SweepInterval))
	}
	if m.MaxLiveSessions == 0 {
		m.MaxLiveSessions = defaultMaxLiveSessions
	}
	if m.MaxLiveSessions < 0 {
		return fmt.Errorf("max_live_sessions: must be positive, got %d", m.MaxLiveSessions)
	}
	if m.MaxBytes == 0 {
		m.MaxBytes = defaultMaxBytes
	}
	if m.MaxBytes < 0 {
		return fmt.Errorf("max_bytes: must be positive, got %d", m.MaxBytes)
	}
	val, _, err := memoryTables.LoadOrNew(m.Name, func() (caddy.Destructor, error) {
		return newSessionTable(), nil
	})
	if err != nil {
		return err
	}
	m.table = val.(*sessionTable)
	m.sweeperDone = make(chan struct{})
	go m.sweepUntilDone(ctx, time.Duration(m.SweepInterval))
	return nil
}

// Cleanup releases this config's hold on the table.
func (m *MemoryStore) Cleanup() error {
	_, err := memoryTables.Delete(m.Name)
	return err
}

func (m *MemoryStore) sweepUntilDone(ctx context.Context, every time.Duration) {
	defer close(m.sweeperDone)
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			m.table.sweep(now)
		}
	}
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store memory [<name>] {
//		sweep_interval    <duration>
//		max_live_sessions <n>
//		max_bytes         <size>
//	}
func (m *MemoryStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store type
	if d.NextArg() {
		m.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "sweep_interval":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("sweep_interval: invalid duration %q", d.Val())
			}
			m.SweepInterval = caddy.Duration(dur)
		case "max_live_sessions":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("max_live_sessions: want a positive integer, got %q", d.Val())
			}
			m.MaxLiveSessions = n
		case "max_bytes":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil || size == 0 || size > 1<<50 {
				return d.Errf("max_bytes: invalid size %q", d.Val())
			}
			m.MaxBytes = int64(size)
		default:
			return d.Errf("store memory: unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

func (m *MemoryStore) Create(_ context.Context, owner store.Owner, s store.Session, maxPerOwner int, now time.Time) (store.Session, error) {
	// The table keeps a copy of its own, exactly as large as the payload,
	// so that it never holds on to the request's buffers.
	s.Payload = bytes.Clone(s.Payload)
	s, err := m.table.create(owner, s, maxPerOwner, tableLimits{m.MaxLiveSessions, m.MaxBytes}, now)
	return s, m.retryLater(err)
}

// retryLater gives a full store's error the hint of when room may come
// back: the next sweep.
func (m *MemoryStore) retryLater(err error) error {
	if errors.Is(err, store.ErrStoreFull) {
		return store.StoreFullError{RetryAfter: time.Duration(m.SweepInterval)}
	}
	return err
}

func (m *MemoryStore) List(_ context.Context, owner store.Owner, now time.Time) ([]store.Session, error) {
	return m.table.list(owner, now), nil
}

func (m *MemoryStore) Get(_ context.Context, owner store.Owner, id string, now time.Time) (store.Session, error) {
	return m.table.get(owner, id, now)
}

func (m *MemoryStore) Update(_ context.Context, owner store.Owner, id string, payload json.RawMessage, cond *store.IfMatch, now time.Time) (store.Session, error) {
	s, err := m.table.update(owner, id, bytes.Clone(payload), cond, m.MaxBytes, now)
	return s, m.retryLater(err)
}

func (m *MemoryStore) Delete(_ context.Context, owner store.Owner, id string, cond *store.IfMatch, now time.Time) error {
	return m.table.remove(owner, id, cond, now)
}

// Usage is what the table holds: its sessions (expired ones until swept) and
// the bytes they count against max_bytes.
func (m *MemoryStore) Usage() store.Usage {
	return store.Usage{Name: m.Name, Sessions: m.table.live.Load(), Bytes: m.table.bytes.Load()}
}

// SessionsByApp counts the table's sessions of each app.
func (m *MemoryStore) SessionsByApp() map[string]int {
	return m.table.countByApp()
}

// Describe names the store for the admin endpoint: "memory:<name>".
func (m *MemoryStore) Describe() string {
	return "memory:" + m.Name
}

// sessionTable is the in-process session storage, split into shards by owner
// so that writers for different accounts rarely meet and the sweeper never
// holds more than one shard's lock.
type sessionTable struct {
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
}

func newSessionTable() *sessionTable {
	t := &sessionTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].owners = map[store.Owner]map[string]*store.Session{}
	}
	return t
}

// Destruct implements caddy.Destructor; the table holds nothing but memory.
func (t *sessionTable) Destruct() error { return nil }

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
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
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
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := t.liveSession(sh, owner, id, now)
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	if !cond.Matches(s.ETag()) {
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
	if !cond.Matches(s.ETag()) {
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

// sweep removes expired sessions, one shard at a time: no lock is held
// across shards, so requests go on during a sweep of any size.
func (t *sessionTable) sweep(now time.Time) (removed int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
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

// Interface guards
var (
	_ store.Store           = (*MemoryStore)(nil)
	_ store.Counter         = (*MemoryStore)(nil)
	_ store.Describer       = (*MemoryStore)(nil)
	_ caddy.Provisioner     = (*MemoryStore)(nil)
	_ caddy.CleanerUpper    = (*MemoryStore)(nil)
	_ caddyfile.Unmarshaler = (*MemoryStore)(nil)
)
