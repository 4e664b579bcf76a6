package ownidsessions

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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

	table *sessionTable
	// sweeperDone is closed when this config's sweeper has stopped.
	sweeperDone chan struct{}
}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.ownid_sessions.stores.memory",
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
//		sweep_interval <duration>
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
		default:
			return d.Errf("store memory: unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

func (m *MemoryStore) Create(_ context.Context, owner Owner, s Session, maxPerOwner int, now time.Time) (Session, error) {
	return m.table.create(owner, s, maxPerOwner, now)
}

func (m *MemoryStore) List(_ context.Context, owner Owner, now time.Time) ([]Session, error) {
	return m.table.list(owner, now), nil
}

func (m *MemoryStore) Get(_ context.Context, owner Owner, id string, now time.Time) (Session, error) {
	return m.table.get(owner, id, now)
}

func (m *MemoryStore) Update(_ context.Context, owner Owner, id string, payload json.RawMessage, cond *ifMatch, now time.Time) (Session, error) {
	return m.table.update(owner, id, payload, cond, now)
}

func (m *MemoryStore) Delete(_ context.Context, owner Owner, id string, cond *ifMatch, now time.Time) error {
	return m.table.remove(owner, id, cond, now)
}

// sessionTable is the in-process session storage, split into shards by owner
// so that writers for different accounts rarely meet and the sweeper never
// holds more than one shard's lock.
type sessionTable struct {
	seed   maphash.Seed
	shards [64]tableShard
}

type tableShard struct {
	mu     sync.RWMutex
	owners map[Owner]map[string]*Session
}

func newSessionTable() *sessionTable {
	t := &sessionTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].owners = map[Owner]map[string]*Session{}
	}
	return t
}

// Destruct implements caddy.Destructor; the table holds nothing but memory.
func (t *sessionTable) Destruct() error { return nil }

func (t *sessionTable) shard(owner Owner) *tableShard {
	return &t.shards[maphash.Comparable(t.seed, owner)%uint64(len(t.shards))]
}

func (t *sessionTable) create(owner Owner, s Session, maxPerOwner int, now time.Time) (Session, error) {
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sessions := sh.owners[owner]
	if sessions == nil {
		sessions = map[string]*Session{}
		sh.owners[owner] = sessions
	}
	for id, old := range sessions {
		if old.expired(now) {
			delete(sessions, id)
		}
	}
	if len(sessions) >= maxPerOwner {
		return Session{}, ErrTooManySessions
	}
	if _, taken := sessions[s.ID]; taken {
		// 128 random bits never collide in practice; refuse rather than
		// overwrite if they ever do.
		return Session{}, fmt.Errorf("session id collision")
	}
	s.Revision = 1
	stored := s
	sessions[s.ID] = &stored
	return s, nil
}

func (t *sessionTable) list(owner Owner, now time.Time) []Session {
	sh := t.shard(owner)
	sh.mu.RLock()
	sessions := sh.owners[owner]
	out := make([]Session, 0, len(sessions))
	for _, s := range sessions {
		if !s.expired(now) {
			out = append(out, *s)
		}
	}
	sh.mu.RUnlock()
	slices.SortFunc(out, func(a, b Session) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func (t *sessionTable) get(owner Owner, id string, now time.Time) (Session, error) {
	sh := t.shard(owner)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	s, ok := sh.owners[owner][id]
	if !ok || s.expired(now) {
		return Session{}, ErrNotFound
	}
	return *s, nil
}

// live returns the owner's live session id under a held write lock, removing
// it if it has expired.
func (sh *tableShard) live(owner Owner, id string, now time.Time) (*Session, bool) {
	sessions := sh.owners[owner]
	s, ok := sessions[id]
	if !ok {
		return nil, false
	}
	if s.expired(now) {
		delete(sessions, id)
		return nil, false
	}
	return s, true
}

func (t *sessionTable) update(owner Owner, id string, payload json.RawMessage, cond *ifMatch, now time.Time) (Session, error) {
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.live(owner, id, now)
	if !ok {
		return Session{}, ErrNotFound
	}
	if !cond.matches(s.ETag()) {
		return Session{}, ErrPreconditionFailed
	}
	if payload != nil {
		s.Payload = payload
	}
	s.LastActive = now
	s.Revision++
	return *s, nil
}

func (t *sessionTable) remove(owner Owner, id string, cond *ifMatch, now time.Time) error {
	sh := t.shard(owner)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.live(owner, id, now)
	if !ok {
		return ErrNotFound
	}
	if !cond.matches(s.ETag()) {
		return ErrPreconditionFailed
	}
	sessions := sh.owners[owner]
	delete(sessions, id)
	if len(sessions) == 0 {
		delete(sh.owners, owner)
	}
	return nil
}

// sweep removes expired sessions, one shard at a time.
func (t *sessionTable) sweep(now time.Time) (removed int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for owner, sessions := range sh.owners {
			for id, s := range sessions {
				if s.expired(now) {
					delete(sessions, id)
					removed++
				}
			}
			if len(sessions) == 0 {
				delete(sh.owners, owner)
			}
		}
		sh.mu.Unlock()
	}
	return removed
}

// Interface guards
var (
	_ Store                 = (*MemoryStore)(nil)
	_ caddy.Provisioner     = (*MemoryStore)(nil)
	_ caddy.CleanerUpper    = (*MemoryStore)(nil)
	_ caddyfile.Unmarshaler = (*MemoryStore)(nil)
)
