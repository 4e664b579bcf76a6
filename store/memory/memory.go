// Package memory is the in-process session store, the Caddy module
// http.ownid_sessions.stores.memory: a table sharded by owner, kept in a
// caddy.UsagePool so that it outlives config reloads, with caps on its
// sessions and bytes and a sweeper that removes what expired.
package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

func init() {
	caddy.RegisterModule(Store{})
}

// tables holds the session tables by name. A table outlives the config
// that made it as long as a newer config uses the same name, so sessions
// survive `caddy reload`.
var tables = caddy.NewUsagePool()

const (
	defaultName            = "default"
	defaultSweepInterval   = time.Minute
	defaultMaxLiveSessions = 1_000_000
	defaultMaxBytes        = 1 << 30

	// sessionOverhead is what the table holds for a session besides the
	// bytes of its owner, id and payload: the Session value, its map
	// entry and, in the worst case of one session per owner, the owner's
	// entry. Measured by TestStoredBytesBoundTheHeap (about 360 bytes for
	// one session per owner); rounded up so that the budget bounds the
	// heap rather than estimates it.
	sessionOverhead = 512
)

// Store keeps sessions in this Caddy process. They survive config
// reloads, not restarts, and are not shared with other Caddy instances.
type Store struct {
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

	// How long the table is kept once no config names it any more (a
	// reload through a config without this store, or with another name),
	// so that a config naming it again within that time finds its
	// sessions. 0 drops it at once. Default: 5m.
	Keep *caddy.Duration `json:"keep,omitempty"`

	table *sessionTable
	// sweeperDone is closed when this config's sweeper has stopped.
	sweeperDone chan struct{}
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.ownid_sessions.stores.memory",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision takes the named table from the pool and starts the sweeper, which
// stops with the config.
func (m *Store) Provision(ctx caddy.Context) error {
	if m.Name == "" {
		m.Name = defaultName
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
	if m.Keep == nil {
		keep := caddy.Duration(defaultKeep)
		m.Keep = &keep
	}
	if *m.Keep < 0 {
		return fmt.Errorf("keep: must not be negative, got %s", time.Duration(*m.Keep))
	}
	val, _, err := tables.LoadOrNew(m.Name, func() (caddy.Destructor, error) {
		return reviveTable(m.Name), nil
	})
	if err != nil {
		return err
	}
	m.table = val.(*sessionTable)
	m.table.keep.Store(int64(*m.Keep))
	m.sweeperDone = make(chan struct{})
	go m.sweepUntilDone(ctx, time.Duration(m.SweepInterval))
	return nil
}

// Cleanup releases this config's hold on the table.
func (m *Store) Cleanup() error {
	_, err := tables.Delete(m.Name)
	return err
}

// sweepUntilDone sweeps the table every interval until the config ends.
func (m *Store) sweepUntilDone(ctx context.Context, every time.Duration) {
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
//		keep              <duration>
//	}
func (m *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
		case "keep":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur < 0 {
				return d.Errf("keep: invalid duration %q", d.Val())
			}
			keep := caddy.Duration(dur)
			m.Keep = &keep
		default:
			return d.Errf("store memory: unrecognized subdirective %q", d.Val())
		}
	}
	return nil
}

// Create implements store.Store; past max_live_sessions or max_bytes it
// answers a store.StoreFullError that says to retry after the next sweep.
func (m *Store) Create(_ context.Context, owner store.Owner, s store.Session, maxPerOwner int, idem *store.Idempotency, now time.Time) (store.Session, error) {
	// The table keeps a copy of its own, exactly as large as the payload,
	// so that it never holds on to the request's buffers.
	s.Payload = bytes.Clone(s.Payload)
	s, err := m.table.createOnce(owner, s, maxPerOwner, idem, tableLimits{m.MaxLiveSessions, m.MaxBytes}, now)
	return s, m.retryLater(err)
}

// retryLater gives a full store's error the hint of when room may come
// back: the next sweep.
func (m *Store) retryLater(err error) error {
	if errors.Is(err, store.ErrStoreFull) {
		return store.StoreFullError{RetryAfter: time.Duration(m.SweepInterval)}
	}
	return err
}

// List implements store.Store.
func (m *Store) List(_ context.Context, owner store.Owner, now time.Time) ([]store.Session, error) {
	return m.table.list(owner, now), nil
}

// Get implements store.Store.
func (m *Store) Get(_ context.Context, owner store.Owner, id string, now time.Time) (store.Session, error) {
	return m.table.get(owner, id, now)
}

// Update implements store.Store; a payload that grows past max_bytes is
// refused as for Create.
func (m *Store) Update(_ context.Context, owner store.Owner, id string, payload json.RawMessage, cond *store.IfMatch, now time.Time) (store.Session, error) {
	s, err := m.table.update(owner, id, bytes.Clone(payload), cond, m.MaxBytes, now)
	return s, m.retryLater(err)
}

// Delete implements store.Store.
func (m *Store) Delete(_ context.Context, owner store.Owner, id string, cond *store.IfMatch, now time.Time) error {
	return m.table.remove(owner, id, cond, now)
}

// DeleteAll implements store.Store.
func (m *Store) DeleteAll(_ context.Context, owner store.Owner, except string, now time.Time) (int, error) {
	return m.table.removeAll(owner, except, now), nil
}

// Usage is what the table holds: its sessions (expired ones until swept) and
// the bytes they count against max_bytes.
func (m *Store) Usage() store.Usage {
	return store.Usage{Name: m.Name, Sessions: m.table.live.Load(), Bytes: m.table.bytes.Load()}
}

// SessionsByApp counts the table's sessions of each app.
func (m *Store) SessionsByApp() map[string]int {
	return m.table.countByApp()
}

// Describe names the store for the admin endpoint: "memory:<name>".
func (m *Store) Describe() string {
	return "memory:" + m.Name
}

// Interface guards
var (
	_ store.Store           = (*Store)(nil)
	_ store.Counter         = (*Store)(nil)
	_ store.Describer       = (*Store)(nil)
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.CleanerUpper    = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
)
