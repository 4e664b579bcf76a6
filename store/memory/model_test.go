package memory

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// ---- reference model ----

type mIdemKey struct {
	o   store.Owner
	key string
}

type mIdem struct {
	fp      string
	created store.Session
	until   time.Time
}

type model struct {
	sess map[store.Owner]map[string]*store.Session
	idem map[mIdemKey]*mIdem
}

func newModel() *model {
	return &model{sess: map[store.Owner]map[string]*store.Session{}, idem: map[mIdemKey]*mIdem{}}
}

func (m *model) live() int64 {
	n := 0
	for _, ss := range m.sess {
		n += len(ss)
	}
	return int64(n)
}

func (m *model) bytes() int64 {
	var b int64
	for o, ss := range m.sess {
		for _, s := range ss {
			b += storedSize(o, s)
		}
	}
	for k, r := range m.idem {
		b += int64(sessionOverhead+len(k.o.App)+len(k.o.Issuer)+len(k.o.Subject)+len(r.created.ID)) + payloadCost(len(r.created.Payload)) + int64(len(k.key)+len(r.fp))
	}
	return b
}

func (m *model) del(o store.Owner, id string) {
	delete(m.sess[o], id)
	if len(m.sess[o]) == 0 {
		delete(m.sess, o)
	}
}

func (m *model) create(o store.Owner, s store.Session, max int, idem *store.Idempotency, lim tableLimits, now time.Time) (store.Session, error) {
	if idem != nil {
		if r, ok := m.idem[mIdemKey{o, idem.Key}]; ok && now.Before(r.until) {
			if r.fp != idem.Fingerprint {
				return store.Session{}, store.ErrIdempotencyMismatch
			}
			return r.created, nil
		}
	}
	for id, x := range m.sess[o] {
		if x.Expired(now) {
			m.del(o, id)
		}
	}
	if len(m.sess[o]) >= max {
		return store.Session{}, store.ErrTooManySessions
	}
	size := storedSize(o, &s)
	if m.live() >= int64(lim.live) || m.bytes()+size > lim.bytes {
		return store.Session{}, store.ErrStoreFull
	}
	if _, ok := m.sess[o][s.ID]; ok {
		return store.Session{}, errCollision
	}
	s.Revision = 1
	s.Tag = "?" // filled by the caller from the table's answer
	c := s
	if m.sess[o] == nil {
		m.sess[o] = map[string]*store.Session{}
	}
	m.sess[o][s.ID] = &c
	return s, nil
}

var errCollision = errors.New("session id collision")

func (m *model) liveSession(o store.Owner, id string, now time.Time) *store.Session {
	s, ok := m.sess[o][id]
	if !ok {
		return nil
	}
	if s.Expired(now) {
		m.del(o, id)
		return nil
	}
	return s
}

// conditional is the owner's live session id and the error a write to it
// under cond must give: not found, or a precondition that fails.
func (m *model) conditional(o store.Owner, id string, cond *store.IfMatch, now time.Time) (*store.Session, error) {
	s := m.liveSession(o, id, now)
	switch {
	case s == nil:
		return nil, store.ErrNotFound
	case cond != nil && !cond.Matches(s.ETag()):
		return s, store.ErrPreconditionFailed
	}
	return s, nil
}

func (m *model) sweep(now time.Time) int {
	n := 0
	for k, r := range m.idem {
		if !now.Before(r.until) {
			delete(m.idem, k)
		}
	}
	for o, ss := range m.sess {
		for id, s := range ss {
			if s.Expired(now) {
				m.del(o, id)
				n++
			}
		}
	}
	return n
}

// ---- generators ----

var awkwardOwners = []store.Owner{
	{},
	{App: "a"},
	{Issuer: "a"},
	{Subject: "a"},
	{App: "/app", Issuer: "https://iss", Subject: "alice"},
	{App: "/app", Issuer: "https://iss", Subject: "bob"},
	{App: "/app", Issuer: "https://is", Subject: "salice"},
	{App: "/ap", Issuer: "p", Subject: "alice"},
	{App: "/app", Subject: "alice"},
	{App: "x\x00", Subject: "\x00"},
	{App: strings.Repeat("L", 300), Issuer: strings.Repeat("I", 300), Subject: "big"},
	{App: "é", Issuer: "\xff\xfe", Subject: "日本"},
}

// seededID is an id of NewID's form from the test's seeded source.
func seededID(r *rand.Rand) string {
	var b [16]byte
	r.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func awkwardID(r *rand.Rand, pool []string) string {
	switch r.Intn(10) {
	case 0, 1, 2:
		return seededID(r)
	case 3:
		return ""
	case 4:
		// non-canonical 22-char base64url: stray low bits
		id := []byte(seededID(r))
		id[21] = "BCDFGHJ"[r.Intn(7)]
		return string(id)
	case 5:
		// 22 chars with a newline or padding or out-of-alphabet chars
		id := []byte(seededID(r))
		id[r.Intn(22)] = "\n\r=+/ .~"[r.Intn(8)]
		return string(id)
	case 6:
		n := 1 + r.Intn(130)
		b := make([]byte, n)
		for i := range b {
			b[i] = "ABCxyz019._~-"[r.Intn(13)]
		}
		return string(b)
	default:
		return pool[r.Intn(len(pool))]
	}
}

func TestTableAgainstModel(t *testing.T) {
	for seed := int64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed, 4000) })
	}
}

func runModel(t *testing.T, seed int64, steps int) {
	r := rand.New(rand.NewSource(seed))
	tbl := newSessionTable()
	m := newModel()
	// ids shared by owners, and 22-char ones that decode to the same bytes
	pool := []string{"a", "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAA\nAA", "AAAAAAAAAAAAAAAAAAAAA\n"}
	for i := 0; i < 6; i++ {
		pool = append(pool, seededID(r))
	}
	known := map[store.Owner][]string{} // ids ever used per owner
	base := t0
	clock := base
	lim := tableLimits{live: 30 + r.Intn(60), bytes: int64(20000 + r.Intn(200000))}
	if r.Intn(3) == 0 {
		lim = tableLimits{1 << 30, 1 << 50}
	}
	maxOwner := 1 + r.Intn(8)
	pick := func() string { return awkwardID(r, pool) }
	for step := 0; step < steps; step++ {
		clock = clock.Add(time.Duration(r.Intn(5000)) * time.Millisecond)
		now := clock.Add(-time.Duration(r.Intn(3000)) * time.Millisecond) // not monotonic
		o := awkwardOwners[r.Intn(len(awkwardOwners))]
		idFor := func() string {
			if ks := known[o]; len(ks) > 0 && r.Intn(3) > 0 {
				return ks[r.Intn(len(ks))]
			}
			// someone else's id
			for _, ks := range known {
				if len(ks) > 0 && r.Intn(2) == 0 {
					return ks[r.Intn(len(ks))]
				}
			}
			return pick()
		}
		what := ""
		switch op := r.Intn(100); {
		case op < 25: // create
			id := pick()
			if r.Intn(4) == 0 {
				id = idFor()
			}
			pl := json.RawMessage(`{"p":"` + strings.Repeat("x", r.Intn(3000)) + `"}`)
			s := store.Session{ID: id, Created: now, LastActive: now, Timeout: time.Duration(1+r.Intn(20)) * time.Second, Payload: pl}
			if r.Intn(3) == 0 {
				s.Expires = now.Add(time.Duration(r.Intn(15000)) * time.Millisecond)
			}
			var idem *store.Idempotency
			if r.Intn(4) == 0 {
				idem = &store.Idempotency{Key: fmt.Sprint("k", r.Intn(4)), Fingerprint: fmt.Sprint("f", r.Intn(2)), TTL: time.Duration(1+r.Intn(30)) * time.Second}
			}
			mx := maxOwner
			if r.Intn(20) == 0 {
				mx = r.Intn(2) - 1 // 0 or -1
			}
			what = fmt.Sprintf("create %+v id=%q max=%d idem=%+v now=%v", o, id, mx, idem, now)
			got, err := tbl.createOnce(o, s, mx, idem, lim, now)
			want, werr := m.create(o, s, mx, idem, lim, now)
			if (err == nil) != (werr == nil) || (err != nil && err.Error() != werr.Error() && !errors.Is(err, werr)) {
				t.Fatalf("step %d %s: err %v, model %v", step, what, err, werr)
			}
			if err == nil {
				if want.Tag == "?" { // fresh
					m.sess[o][id].Tag = got.Tag
					if idem != nil {
						m.idem[mIdemKey{o, idem.Key}] = &mIdem{fp: idem.Fingerprint, created: got, until: now.Add(idem.TTL)}
					}
					want.Tag = got.Tag
					known[o] = append(known[o], id)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d %s:\n got %+v\nwant %+v", step, what, got, want)
				}
			}
		case op < 45: // get
			id := idFor()
			what = fmt.Sprintf("get %+v %q", o, id)
			got, err := tbl.get(o, id, now)
			ws, ok := m.sess[o][id]
			if !ok || ws.Expired(now) {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("step %d %s: %+v %v, want not found", step, what, got, err)
				}
			} else if err != nil || !reflect.DeepEqual(got, *ws) {
				t.Fatalf("step %d %s: %+v %v, want %+v", step, what, got, err, *ws)
			}
		case op < 65: // update
			id := idFor()
			var pl json.RawMessage
			if r.Intn(3) > 0 {
				n := r.Intn(5000)
				if r.Intn(8) == 0 {
					n = r.Intn(60000)
				}
				pl = json.RawMessage(`{"u":"` + strings.Repeat("y", n) + `"}`)
			}
			var cond *store.IfMatch
			ws := m.sess[o][id]
			switch r.Intn(4) {
			case 1:
				cond = &store.IfMatch{Any: true}
			case 2:
				if ws != nil {
					cond = &store.IfMatch{Tags: []string{ws.ETag()}}
				}
			case 3:
				cond = &store.IfMatch{Tags: []string{`"stale"`}}
			}
			maxB := lim.bytes
			what = fmt.Sprintf("update %+v %q cond=%+v len=%d now=%v", o, id, cond, len(pl), now)
			got, err := tbl.update(o, id, pl, cond, maxB, now)
			s, werr := m.conditional(o, id, cond, now)
			if werr == nil && pl != nil && payloadCost(len(pl))-payloadCost(len(s.Payload)) > 0 && m.bytes()+payloadCost(len(pl))-payloadCost(len(s.Payload)) > maxB {
				werr = store.ErrStoreFull
			}
			if !errors.Is(err, werr) || (werr == nil && err != nil) {
				t.Fatalf("step %d %s: err %v, model %v", step, what, err, werr)
			}
			if werr == nil {
				if pl != nil {
					s.Payload = pl
				}
				s.LastActive = now
				s.Revision++
				s.Tag = got.Tag
				if !reflect.DeepEqual(got, *s) {
					t.Fatalf("step %d %s: got %+v want %+v", step, what, got, *s)
				}
			}
		case op < 75: // remove
			id := idFor()
			var cond *store.IfMatch
			if ws := m.sess[o][id]; ws != nil && r.Intn(2) == 0 {
				cond = &store.IfMatch{Tags: []string{ws.ETag()}}
			} else if r.Intn(3) == 0 {
				cond = &store.IfMatch{Tags: []string{`"nope"`}}
			}
			what = fmt.Sprintf("remove %+v %q cond=%+v", o, id, cond)
			err := tbl.remove(o, id, cond, now)
			_, werr := m.conditional(o, id, cond, now)
			if werr == nil {
				m.del(o, id)
			}
			if !errors.Is(err, werr) || (werr == nil && err != nil) {
				t.Fatalf("step %d %s: err %v, model %v", step, what, err, werr)
			}
		case op < 80: // removeAll
			except := ""
			if r.Intn(2) == 0 {
				except = idFor()
			}
			what = fmt.Sprintf("removeAll %+v except %q", o, except)
			n := tbl.removeAll(o, except, now)
			wn := 0
			for id, s := range m.sess[o] {
				if id == except {
					continue
				}
				if !s.Expired(now) {
					wn++
				}
				m.del(o, id)
			}
			if n != wn {
				t.Fatalf("step %d %s: %d, want %d", step, what, n, wn)
			}
		case op < 85: // sweep
			what = fmt.Sprintf("sweep %v", now)
			n := tbl.sweep(now)
			if wn := m.sweep(now); n != wn {
				t.Fatalf("step %d %s: removed %d, want %d", step, what, n, wn)
			}
		default: // list
			what = fmt.Sprintf("list %+v", o)
			got := tbl.list(o, now)
			var want []store.Session
			for _, s := range m.sess[o] {
				if !s.Expired(now) {
					want = append(want, *s)
				}
			}
			store.Sort(want)
			if want == nil {
				want = []store.Session{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d %s:\n got %v\nwant %v", step, what, ids(got), ids(want))
			}
		}
		if l, wl := tbl.live.Load(), m.live(); l != wl {
			t.Fatalf("step %d after %s: live %d, model %d", step, what, l, wl)
		}
		if b, wb := tbl.bytes.Load(), m.bytes(); b != wb {
			t.Fatalf("step %d after %s: bytes %d, model %d", step, what, b, wb)
		}
		if step%50 == 0 {
			checkStructure(t, tbl, m, step)
		}
	}
	checkStructure(t, tbl, m, steps)
}

func ids(ss []store.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

// checkStructure: the shard maps and owner lists agree with each other and
// with the model.
func checkStructure(t *testing.T, tbl *sessionTable, m *model, step int) {
	t.Helper()
	total := 0
	apps := map[string]int{}
	for i := range tbl.shards {
		sh := &tbl.shards[i]
		inLists := 0
		for d, e := range sh.owners {
			if digestOf(e.owner) != d || tbl.shard(d) != sh {
				t.Fatalf("step %d: owner entry misfiled", step)
			}
			if len(e.sessions) == 0 {
				t.Fatalf("step %d: empty owner entry kept", step)
			}
			if len(e.sessions) != len(m.sess[e.owner]) {
				t.Fatalf("step %d: owner %+v lists %d, model %d", step, e.owner, len(e.sessions), len(m.sess[e.owner]))
			}
			for _, s := range e.sessions {
				k := keyOf(d, idKeyOf(s.ID))
				if sh.sessions[k] != s {
					t.Fatalf("step %d: listed session not in map", step)
				}
				if ws := m.sess[e.owner][s.ID]; ws == nil || !reflect.DeepEqual(*ws, *s) {
					t.Fatalf("step %d: session %q differs from model", step, s.ID)
				}
			}
			inLists += len(e.sessions)
			apps[e.owner.App] += len(e.sessions)
		}
		if inLists != len(sh.sessions) {
			t.Fatalf("step %d: shard %d map %d vs lists %d", step, i, len(sh.sessions), inLists)
		}
		total += inLists
	}
	if int64(total) != m.live() {
		t.Fatalf("step %d: %d held, model %d", step, total, m.live())
	}
	if got := tbl.countByApp(); !reflect.DeepEqual(got, apps) {
		t.Fatalf("countByApp %v vs %v", got, apps)
	}
	_ = slices.Clone[[]int]
}
