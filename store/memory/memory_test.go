package memory

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
	"github.com/ownid-sessions/caddy-ownid-sessions/store/storetest"
)

// newTestContext is a Caddy context for provisioning a store; it is
// cancelled when the test ends, if not before.
func newTestContext(t testing.TB) (caddy.Context, context.CancelFunc) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx, cancel
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		ctx, _ := newTestContext(t)
		m := &Store{Name: "contract-" + t.Name()}
		if err := m.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Cleanup() })
		return m
	})
}

func TestStoreSharedAcrossConfigs(t *testing.T) {
	ctx1, cancel1 := newTestContext(t)
	a := &Store{Name: "shared-test"}
	if err := a.Provision(ctx1); err != nil {
		t.Fatal(err)
	}
	o := store.Owner{Subject: "ivan"}
	s, err := a.Create(context.Background(), o, newTestSession(t0, time.Hour), 10, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	// A second config takes the same table, then the first goes away.
	ctx2, cancel2 := newTestContext(t)
	b := &Store{Name: "shared-test"}
	if err := b.Provision(ctx2); err != nil {
		t.Fatal(err)
	}
	cancel1()
	if err := a.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(context.Background(), o, s.ID, t0); err != nil {
		t.Fatalf("session lost when the old config went away: %v", err)
	}
	// Another name is another table.
	c := &Store{Name: "other-test"}
	if err := c.Provision(ctx2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), o, s.ID, t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other store sees the session: %v", err)
	}
	cancel2()
	_ = b.Cleanup()
	_ = c.Cleanup()
	// With no config left, the table is kept (keep, 5m by default): a
	// config that names it again finds the sessions.
	d := &Store{Name: "shared-test"}
	ctx3, cancel3 := newTestContext(t)
	defer cancel3()
	if err := d.Provision(ctx3); err != nil {
		t.Fatal(err)
	}
	defer d.Cleanup()
	if _, err := d.Get(context.Background(), o, s.ID, t0); err != nil {
		t.Fatalf("a kept table lost its sessions: %v", err)
	}
}

// TestSweeperStopsWithConfig: each config's sweeper ends when its context
// does, while the table it swept lives on for the next config.
func TestSweeperStopsWithConfig(t *testing.T) {
	var stores []*Store
	var cancels []context.CancelFunc
	for i := 0; i < 3; i++ {
		ctx, cancel := newTestContext(t)
		m := &Store{Name: "sweeper-test", SweepInterval: caddy.Duration(time.Millisecond)}
		if err := m.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Cleanup() })
		stores = append(stores, m)
		cancels = append(cancels, cancel)
	}
	o := store.Owner{Subject: "sweeper"}
	s, _ := stores[2].table.create(o, newTestSession(time.Now(), time.Hour), 10, tableLimits{1000, 1 << 40}, time.Now())
	for i, cancel := range cancels[:2] {
		cancel()
		select {
		case <-stores[i].sweeperDone:
		case <-time.After(5 * time.Second):
			t.Fatalf("sweeper %d still running 5s after its config stopped", i)
		}
	}
	select {
	case <-stores[2].sweeperDone:
		t.Fatal("the live config's sweeper stopped")
	default:
	}
	if _, err := stores[2].table.get(o, s.ID, time.Now()); err != nil {
		t.Fatalf("the table lost a live session: %v", err)
	}
	cancels[2]()
	<-stores[2].sweeperDone
}

// TestStoreCounts: what the store tells the admin endpoint and the metrics
// (store.Counter, store.Describer).
func TestStoreCounts(t *testing.T) {
	ctx, _ := newTestContext(t)
	m := &Store{Name: "counts-test"}
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Cleanup() })
	now := time.Now()
	for _, o := range []store.Owner{{App: "/a", Subject: "x"}, {App: "/a", Subject: "y"}, {App: "/b", Subject: "x"}} {
		if _, err := m.Create(context.Background(), o, newTestSession(now, time.Hour), 10, nil, now); err != nil {
			t.Fatal(err)
		}
	}
	u := m.Usage()
	if u.Name != "counts-test" || u.Sessions != 3 || u.Bytes != m.table.bytes.Load() || u.Bytes < 3*sessionOverhead {
		t.Errorf("usage %+v", u)
	}
	if apps := m.SessionsByApp(); len(apps) != 2 || apps["/a"] != 2 || apps["/b"] != 1 {
		t.Errorf("sessions by app %v", apps)
	}
	if d := m.Describe(); d != "memory:counts-test" {
		t.Errorf("described as %q", d)
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	var m Store
	err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`memory site-a {
		sweep_interval    5s
		max_live_sessions 3
		max_bytes         1MiB
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "site-a" || time.Duration(m.SweepInterval) != 5*time.Second || m.MaxLiveSessions != 3 || m.MaxBytes != 1<<20 {
		t.Fatalf("parsed %+v", m)
	}
	for input, want := range map[string]string{
		"memory a b":                         "wrong argument count",
		"memory {\n size 1\n}":               `store memory: unrecognized subdirective "size"`,
		"memory {\n max_bytes lots\n}":       `max_bytes: invalid size "lots"`,
		"memory {\n sweep_interval 0s\n}":    `sweep_interval: invalid duration "0s"`,
		"memory {\n max_live_sessions -1\n}": "max_live_sessions: want a positive integer",
		"memory {\n max_live_sessions\n}":    "wrong argument count",
	} {
		var m Store
		if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", input, err, want)
		}
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, func(b *testing.B) store.Store {
		ctx, _ := newTestContext(b)
		m := &Store{Name: "bench-stores"}
		if err := m.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Cleanup() })
		return m
	})
}

// TestKeepThroughAConfigWithoutIt: a reload A → B → A, where B has no such
// store, keeps A's sessions for keep; past keep, or with keep 0, they are
// gone.
func TestKeepThroughAConfigWithoutIt(t *testing.T) {
	o := store.Owner{Subject: "kept"}
	provision := func(name string, keep time.Duration) *Store {
		ctx, _ := newTestContext(t)
		k := caddy.Duration(keep)
		m := &Store{Name: name, Keep: &k}
		if err := m.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tt := range []struct {
		name       string
		keep, away time.Duration
		survives   bool
	}{
		{"keep-within", time.Minute, 0, true},
		{"keep-past", 100 * time.Millisecond, 300 * time.Millisecond, false},
		{"keep-zero", 0, 0, false},
	} {
		a := provision(tt.name, tt.keep)
		s, err := a.Create(context.Background(), o, newTestSession(t0, time.Hour), 10, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Cleanup(); err != nil { // config B: no store of that name
			t.Fatal(err)
		}
		time.Sleep(tt.away)
		again := provision(tt.name, tt.keep) // config A again
		_, err = again.Get(context.Background(), o, s.ID, t0)
		if survives := err == nil; survives != tt.survives {
			t.Errorf("%s: session survived %v, want %v (%v)", tt.name, survives, tt.survives, err)
		}
		again.Cleanup()
	}
}
