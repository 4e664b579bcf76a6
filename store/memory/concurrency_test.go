package memory

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// TestSweepKeepsConcurrentUpdates: sessions due at the sweep's time are
// updated concurrently with it, at a time before it, to a new end after it;
// every acknowledged update must survive the sweep.
func TestSweepKeepsConcurrentUpdates(t *testing.T) {
	for round := 0; round < 12; round++ {
		tbl := newSessionTable()
		const n = 4000
		type ref struct {
			o  store.Owner
			id string
		}
		refs := make([]ref, n)
		for i := range refs {
			o := store.Owner{App: "/a", Subject: fmt.Sprint("u", i%1000)}
			s, err := tbl.create(o, newTestSession(t0, 10*time.Second), 100, tableLimits{1 << 20, 1 << 40}, t0)
			if err != nil {
				t.Fatal(err)
			}
			refs[i] = ref{o, s.ID}
		}
		sweepAt := t0.Add(15 * time.Second) // all are due at it, unless updated
		updAt := t0.Add(9 * time.Second)    // live then; the update ends them at t0+19s
		var acked [n]atomic.Bool
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				<-start
				for i := w; i < n; i += 8 {
					if _, err := tbl.update(refs[i].o, refs[i].id, nil, nil, 1<<40, updAt); err == nil {
						acked[i].Store(true)
					} else if !errors.Is(err, store.ErrNotFound) {
						t.Error(err)
					}
				}
			}(w)
		}
		removed := make(chan int)
		go func() { <-start; removed <- tbl.sweep(sweepAt) }()
		close(start)
		wg.Wait()
		r := <-removed
		kept := 0
		for i := range refs {
			_, err := tbl.get(refs[i].o, refs[i].id, sweepAt)
			if acked[i].Load() {
				kept++
				if err != nil {
					t.Fatalf("round %d: acknowledged update of %d lost by the sweep: %v", round, i, err)
				}
			}
		}
		if int64(kept) != tbl.live.Load() || kept+r != n {
			t.Fatalf("round %d: kept %d removed %d live %d", round, kept, r, tbl.live.Load())
		}
	}
}

// TestTableConcurrentStress: random operations from many goroutines on
// overlapping owners and ids, with sweeps running; afterwards the counters
// match what is held.
func TestTableConcurrentStress(t *testing.T) {
	tbl := newSessionTable()
	owners := awkwardOwners
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	now := func(r *rand.Rand) time.Time {
		return time.Unix(0, clock.Add(int64(r.Intn(3))*int64(time.Millisecond))).Add(-time.Duration(r.Intn(2000)) * time.Millisecond)
	}
	var mu sync.Mutex
	known := []string{"a", "AAAAAAAAAAAAAAAAAAAAAA", ""}
	pickKnown := func(r *rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		return known[r.Intn(len(known))]
	}
	lim := tableLimits{live: 200, bytes: 200_000}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for i := 0; i < 8000; i++ {
				o := owners[r.Intn(len(owners))]
				at := now(r)
				switch r.Intn(8) {
				case 0, 1:
					id := awkwardID(r, []string{"a", "AAAAAAAAAAAAAAAAAAAAAA", ""})
					s := store.Session{ID: id, Created: at, LastActive: at, Timeout: time.Duration(1+r.Intn(3000)) * time.Millisecond,
						Payload: json.RawMessage(`{"p":"` + strings.Repeat("x", r.Intn(2000)) + `"}`)}
					var idem *store.Idempotency
					if r.Intn(5) == 0 {
						idem = &store.Idempotency{Key: fmt.Sprint(r.Intn(3)), Fingerprint: "f", TTL: time.Duration(1+r.Intn(2000)) * time.Millisecond}
					}
					if _, err := tbl.createOnce(o, s, 6, idem, lim, at); err == nil {
						mu.Lock()
						known = append(known, id)
						mu.Unlock()
					}
				case 2:
					tbl.get(o, pickKnown(r), at)
				case 3:
					tbl.update(o, pickKnown(r), json.RawMessage(strings.Repeat("y", r.Intn(3000))), nil, lim.bytes, at)
				case 4:
					tbl.remove(o, pickKnown(r), nil, at)
				case 5:
					if r.Intn(5) == 0 {
						tbl.removeAll(o, pickKnown(r), at)
					}
				case 6:
					for _, s := range tbl.list(o, at) {
						if s.Expired(at) {
							t.Errorf("list returned an expired session")
						}
					}
				case 7:
					tbl.countByApp()
				}
			}
		}(int64(w))
	}
	var sw sync.WaitGroup
	sw.Add(1)
	go func() {
		defer sw.Done()
		r := rand.New(rand.NewSource(99))
		for {
			select {
			case <-stop:
				return
			default:
				tbl.sweep(now(r))
			}
		}
	}()
	wg.Wait()
	close(stop)
	sw.Wait()
	// Counters against what is held.
	var live, bytes int64
	for i := range tbl.shards {
		sh := &tbl.shards[i]
		n := 0
		for d, e := range sh.owners {
			for _, s := range e.sessions {
				if sh.sessions[keyOf(d, idKeyOf(s.ID))] != s {
					t.Fatal("list/map mismatch")
				}
				bytes += storedSize(e.owner, s)
			}
			n += len(e.sessions)
		}
		if n != len(sh.sessions) {
			t.Fatalf("shard %d: %d listed, %d mapped", i, n, len(sh.sessions))
		}
		live += int64(n)
		for k, r := range sh.idem {
			bytes += idemSize(k, r)
		}
	}
	if live != tbl.live.Load() || bytes != tbl.bytes.Load() {
		t.Fatalf("held %d sessions / %d bytes; counters say %d / %d", live, bytes, tbl.live.Load(), tbl.bytes.Load())
	}
	// A sweep far in the future empties it exactly.
	tbl.sweep(time.Unix(0, clock.Load()).Add(time.Hour * 24 * 365))
	if tbl.live.Load() != 0 || tbl.bytes.Load() != 0 {
		t.Fatalf("after a final sweep: %d sessions, %d bytes", tbl.live.Load(), tbl.bytes.Load())
	}
	t.Logf("ok: %d live before final sweep", live)
}
