package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
	"github.com/ownid-sessions/caddy-ownid-sessions/store/storetest"
)

// The passwords of the test setups; no error may show them.
const (
	testPassword         = "s3cret-data"
	testSentinelPassword = "s3cret-sentinel"
)

var prefixes atomic.Int64

// freshPrefix is a key prefix no other test uses.
func freshPrefix(name string) string {
	return fmt.Sprintf("ownid_%s:%d:%d:", name, time.Now().UnixNano(), prefixes.Add(1))
}

// provision provisions a copy of cfg (with a fresh key prefix unless it
// has one) for t.
func provision(t testing.TB, cfg Store) *Store {
	t.Helper()
	s := cfg
	if s.KeyPrefix == "" {
		s.KeyPrefix = freshPrefix("topo")
	}
	if err := s.Provision(newTestContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return &s
}

// runContract runs the store contract on stores of cfg, a fresh prefix
// for each.
func runContract(t *testing.T, cfg Store) {
	storetest.Run(t, func(t *testing.T) store.Store { return provision(t, cfg) })
}

// TestCluster: the store on a Redis Cluster of three masters with one
// replica each, with a password: the contract, with and without replica
// reads; delete all on a real cluster; reads spread over replicas; and a
// master killed under writes.
func TestCluster(t *testing.T) {
	c := redistest.StartClusterWith(t, redistest.ClusterConfig{Password: testPassword})
	base := Store{Cluster: c.Addrs()[:2], Password: testPassword}
	t.Run("contract", func(t *testing.T) { runContract(t, base) })
	t.Run("contract with replica reads and wait_replicas 1", func(t *testing.T) {
		cfg := base
		cfg.ReplicaReads, cfg.WaitReplicas = true, 1
		runContract(t, cfg)
	})
	t.Run("delete all removes the session keys", func(t *testing.T) { testDeleteAllKeys(t, base) })
	t.Run("replica reads", func(t *testing.T) {
		masters := c.Masters()
		var replicas []string
		for _, a := range c.Addrs() {
			if !contains(masters, a) {
				replicas = append(replicas, a)
			}
		}
		testReplicaReads(t, base, masters, replicas, func(key string) string { return c.ReplicasOf(c.MasterFor(key))[0] })
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := base
		cfg.Password = "wrong-" + testPassword
		testWrongPassword(t, cfg, cfg.Password)
	})
	t.Run("replica down", func(t *testing.T) {
		testReplicaDown(t, base, func(key string) string { return c.ReplicasOf(c.MasterFor(key))[0] }, c.Kill, func(replica string) {
			c.Restart(replica)
			c.WaitOK()
			c.WaitReplicated()
		})
	})
	t.Run("failover", func(t *testing.T) {
		testFailover(t, base, func(key string) string {
			m := c.MasterFor(key)
			c.Kill(m)
			return m
		}, func(string) { c.WaitOK() }, func(killed string) {
			c.Restart(killed)
			c.WaitOK()
			c.WaitReplicated()
		})
	})
}

// TestSentinel: the store on a master and a replica watched by three
// sentinels, all with passwords: the contract, with and without replica
// reads; reads spread over the replica; and the master killed under
// writes.
func TestSentinel(t *testing.T) {
	s := redistest.StartSentinelWith(t, redistest.SentinelConfig{Password: testPassword, SentinelPassword: testSentinelPassword})
	base := Store{
		Sentinel: &Sentinel{MasterName: s.MasterName(), Addrs: s.SentinelAddrs(), Password: testSentinelPassword},
		Password: testPassword,
	}
	t.Run("contract", func(t *testing.T) { runContract(t, base) })
	t.Run("contract with replica reads and wait_replicas 1", func(t *testing.T) {
		cfg := base
		cfg.ReplicaReads, cfg.WaitReplicas = true, 1
		runContract(t, cfg)
	})
	t.Run("delete all removes the session keys", func(t *testing.T) { testDeleteAllKeys(t, base) })
	t.Run("replica reads", func(t *testing.T) {
		master := s.Master()
		var replicas []string
		for _, a := range s.DataAddrs() {
			if a != master {
				replicas = append(replicas, a)
			}
		}
		testReplicaReads(t, base, []string{master}, replicas, func(string) string { return replicas[0] })
	})
	t.Run("replica down", func(t *testing.T) {
		testReplicaDown(t, base, func(string) string {
			if d := s.DataAddrs(); d[0] != s.Master() {
				return d[0]
			}
			return s.DataAddrs()[1]
		}, s.Kill, s.Rejoin)
	})
	t.Run("wrong sentinel password", func(t *testing.T) {
		cfg := base
		sn := *base.Sentinel
		sn.Password = "wrong-" + testSentinelPassword
		cfg.Sentinel = &sn
		testWrongPassword(t, cfg, sn.Password)
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := base
		cfg.Password = "wrong-" + testPassword
		testWrongPassword(t, cfg, cfg.Password)
	})
	t.Run("failover", func(t *testing.T) {
		testFailover(t, base, func(string) string { return s.KillMaster() },
			func(killed string) { s.WaitPromoted(killed) }, s.Rejoin)
	})
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// createSessions creates n sessions of an hour for o (at most maxPerOwner) and
// returns their ids.
func createSessions(t *testing.T, st *Store, o store.Owner, n, maxPerOwner int, now time.Time) []string {
	t.Helper()
	var ids []string
	for range n {
		s, err := st.Create(context.Background(), o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, maxPerOwner, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	return ids
}

// testDeleteAllKeys: delete all reaches the session keys themselves (by
// the prefix it is given, in the owner's slot), not only the index.
func testDeleteAllKeys(t *testing.T, cfg Store) {
	st := provision(t, cfg)
	ctx := context.Background()
	o := store.Owner{App: "/all", Subject: "everywhere"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := createSessions(t, st, o, 3, 10, now)
	if n, err := st.DeleteAll(ctx, o, ids[0], now); err != nil || n != 2 {
		t.Fatalf("delete all but one: %d %v", n, err)
	}
	prefix, index := st.ownerKeys(o)
	for i, id := range ids {
		want := int64(0) // deleted
		if i == 0 {
			want = 1 // kept
		}
		if n, err := st.client.Exists(ctx, prefix+id).Result(); err != nil || n != want {
			t.Fatalf("session key %d: exists %d, %v; want %d", i, n, err, want)
		}
	}
	if ids, err := st.client.ZRange(ctx, index, 0, -1).Result(); err != nil || len(ids) != 1 {
		t.Fatalf("index after delete all: %v %v", ids, err)
	}
}

// commandCalls is how many times the node at addr ran command since its
// statistics were reset.
func commandCalls(t *testing.T, addr, command string) int {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, Password: testPassword})
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+command+":calls="); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			return n
		}
	}
	return 0
}

func resetStats(t *testing.T, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a, Password: testPassword})
		err := c.ConfigResetStat(context.Background()).Err()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// testReplicaReads: with replica_reads, reads go to the master and its
// replicas, and with wait_replicas 1 every one of them sees the write just
// acknowledged; without it, replicas get none.
func testReplicaReads(t *testing.T, cfg Store, masters, replicas []string, replicaFor func(key string) string) {
	ctx := context.Background()
	all := append(append([]string(nil), masters...), replicas...)
	reads := func(st *Store) (onMasters, onReplicas int) {
		t.Helper()
		o := store.Owner{App: "/replica", Subject: "reader"}
		now := time.Now().UTC().Truncate(time.Millisecond)
		s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: json.RawMessage(`{"r":1}`)}, 10, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		_, index := st.ownerKeys(o)
		knowReplicas(t, st, replicaFor(index))
		resetStats(t, all)
		for i := range 40 {
			got, err := st.Get(ctx, o, s.ID, now)
			if err != nil || string(got.Payload) != `{"r":1}` {
				t.Fatalf("read %d: %+v %v", i, got, err)
			}
		}
		for _, a := range masters {
			onMasters += commandCalls(t, a, "hmget")
		}
		for _, a := range replicas {
			onReplicas += commandCalls(t, a, "hmget")
		}
		return onMasters, onReplicas
	}
	cfg.WaitReplicas = 1
	cfg.ReplicaReads = true
	m, r := reads(provision(t, cfg))
	t.Logf("replica_reads on: %d reads on masters, %d on replicas", m, r)
	// At random between the master and its replica: 40 reads all on one
	// side happen once in 2^39.
	if r == 0 || m == 0 || m+r != 40 {
		t.Fatalf("replica_reads on: %d reads on masters, %d on replicas; want both", m, r)
	}
	cfg.ReplicaReads = false
	m, r = reads(provision(t, cfg))
	if r != 0 || m != 40 {
		t.Fatalf("replica_reads off: %d reads on masters, %d on replicas; want all on masters", m, r)
	}
}

// testReplicaDown: with replica_reads, reads keep working when a replica
// (replicaFor the key of the reads) dies, before anything tells the
// client it is gone: they go to the master instead.
func testReplicaDown(t *testing.T, cfg Store, replicaFor func(key string) string, kill, restart func(addr string)) {
	cfg.ReplicaReads, cfg.WaitReplicas = true, 1
	st := provision(t, cfg)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	o := store.Owner{App: "/down", Subject: "reader"}
	s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 10, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	_, index := st.ownerKeys(o)
	replica := replicaFor(index)
	// Reads reach that replica before it dies, or the test proves
	// nothing.
	knowReplicas(t, st, replica)
	resetStats(t, []string{replica})
	for deadline := time.Now().Add(10 * time.Second); commandCalls(t, replica, "hmget") == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no read reached the replica %s", replica)
		}
		for range 10 {
			if _, err := st.Get(ctx, o, s.ID, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	kill(replica)
	// At random between the master and the dead replica: 20 reads all
	// avoid the replica once in 2^20.
	for i := range 20 {
		if _, err := st.Get(ctx, o, s.ID, now); err != nil {
			t.Fatalf("read %d with the replica down: %v", i, err)
		}
	}
	restart(replica)
}

// knowReplicas waits until the client of st, if a cluster client, knows
// the replicas at addrs: one loads only those that had replicated
// something when it loaded the slots (CLUSTER SLOTS leaves the others
// out), and reloads them only every minute or after a failure.
func knowReplicas(t *testing.T, st *Store, addrs ...string) {
	t.Helper()
	cc, ok := st.client.(*goredis.ClusterClient)
	if !ok || len(st.Cluster) == 0 {
		return // sentinel: the sentinels list every replica
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var mu sync.Mutex
		known := map[string]bool{}
		// ForEachSlave reloads the slots first.
		err := cc.ForEachSlave(context.Background(), func(_ context.Context, c *goredis.Client) error {
			mu.Lock()
			known[c.Options().Addr] = true
			mu.Unlock()
			return nil
		})
		missing := 0
		for _, a := range addrs {
			if !known[a] {
				missing++
			}
		}
		if err == nil && missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster client knows %v, not all of %v: %v", known, addrs, err)
		}
	}
}

// testWrongPassword: a store with a wrong password fails, and its errors
// do not show the password.
func testWrongPassword(t *testing.T, cfg Store, password string) {
	cfg.Timeout = caddy.Duration(time.Second)
	st := provision(t, cfg)
	ctx := context.Background()
	o := store.Owner{Subject: "nobody"}
	now := time.Now()
	_, err := st.Get(ctx, o, "x", now)
	if err == nil || errors.Is(err, store.ErrNotFound) || strings.Contains(err.Error(), password) {
		t.Fatalf("get with a wrong password: %v", err)
	}
	_, err = st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 10, nil, now)
	if err == nil || strings.Contains(err.Error(), password) {
		t.Fatalf("create with a wrong password: %v", err)
	}
}

// testFailover: writes (a create, then an update of what was created) run
// while the master of their keys is killed (kill). While no master serves
// them they fail, never answering wrong (not found, If-Match, too many);
// once a replica has taken over (promoted) the same store reads again, as
// does a store that only reads (a client of its own), and once the killed
// node is back as a replica (rejoin) the store writes again. With
// wait_replicas 1, every acknowledged write is there afterwards.
func testFailover(t *testing.T, cfg Store, kill func(key string) string, promoted, rejoin func(killed string)) {
	cfg.KeyPrefix = freshPrefix("failover")
	cfg.Timeout = caddy.Duration(500 * time.Millisecond)
	cfg.WaitReplicas = 1
	cfg.WaitTimeout = caddy.Duration(300 * time.Millisecond)
	st := provision(t, cfg)
	ctx := context.Background()
	o := store.Owner{App: "/failover", Subject: "writer"}
	_, index := st.ownerKeys(o)
	readCfg := cfg
	readCfg.Timeout = caddy.Duration(time.Second) // another client
	reader := provision(t, readCfg)
	if _, err := reader.List(ctx, o, time.Now()); err != nil {
		t.Fatal(err)
	}

	var (
		mu         sync.Mutex
		acked      = map[string]int{} // id: the n of its acknowledged update, -1 for none
		failed     int                // writes that failed
		unknown    int                // of which may have been applied
		wrong      []error            // answers a store that lost nothing never gives
		rejoined   atomic.Bool
		okRejoined atomic.Int64 // writes acknowledged since the rejoin
	)
	record := func(err error) bool {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			if rejoined.Load() {
				okRejoined.Add(1)
			}
			return true
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrPreconditionFailed),
			errors.Is(err, store.ErrTooManySessions), errors.Is(err, store.ErrStoreFull):
			wrong = append(wrong, err)
		default:
			failed++
			if errors.Is(err, store.ErrOutcomeUnknown) {
				unknown++
			}
		}
		return false
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			now := time.Now().UTC().Truncate(time.Millisecond)
			s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 1<<20, nil, now)
			if record(err) {
				mu.Lock()
				acked[s.ID] = -1
				mu.Unlock()
				_, err := st.Update(ctx, o, s.ID, json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), nil, now)
				if record(err) {
					mu.Lock()
					acked[s.ID] = i
					mu.Unlock()
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stopped := false
	stopWriting := func() {
		if !stopped {
			stopped = true
			close(stop)
			<-done
		}
	}
	t.Cleanup(stopWriting)
	counts := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d sessions created, %d writes failed (%d may have been applied), %d since the rejoin", len(acked), failed, unknown, okRejoined.Load())
	}
	waitUntil := func(what string, limit time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > limit {
				t.Fatalf("%s: not within %s; %s", what, limit, counts())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitUntil("writes before the kill", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	killedAt := time.Now()
	killed := kill(index)
	promoted(killed)
	t.Logf("a replica took over from %s in %s", killed, time.Since(killedAt).Round(time.Millisecond))
	readsBack := waitUntil("reads after the promotion", 10*time.Second, func() bool {
		_, err := st.List(ctx, o, time.Now())
		return err == nil
	})
	onlyReadsBack := waitUntil("reads of a store that only reads, after the promotion", 10*time.Second, func() bool {
		_, err := reader.List(ctx, o, time.Now())
		return err == nil
	})
	rejoin(killed)
	rejoined.Store(true)
	writesBack := waitUntil("writes after the old master rejoined", 10*time.Second, func() bool { return okRejoined.Load() >= 20 })
	stopWriting()
	t.Logf("%s; reads back %s after the promotion (%s more for a store that only reads), writes back %s after the rejoin", counts(),
		readsBack.Round(time.Millisecond), onlyReadsBack.Round(time.Millisecond), writesBack.Round(time.Millisecond))

	if len(wrong) > 0 {
		t.Errorf("%d wrong answers, the first: %v", len(wrong), wrong[0])
	}
	if failed == 0 {
		t.Error("no write failed while the master was down")
	}
	list, err := st.List(ctx, o, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]string{}
	for _, s := range list {
		have[s.ID] = string(s.Payload)
	}
	lost, lostUpdates := 0, 0
	for id, n := range acked {
		payload, ok := have[id]
		switch {
		case !ok:
			lost++
		case n >= 0 && payload != fmt.Sprintf(`{"n":%d}`, n):
			lostUpdates++
		}
	}
	if lost > 0 || lostUpdates > 0 {
		t.Fatalf("of %d acknowledged creates, %d are gone and %d lost their acknowledged update", len(acked), lost, lostUpdates)
	}
}
