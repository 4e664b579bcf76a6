package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestKillRestart: a persistent server keeps, across a kill and a restart,
// what it acknowledged; while killed it answers nothing.
func TestKillRestart(t *testing.T) {
	s := Start(t, true)
	opts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("a killed server answers")
	}
	s.Restart()
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after the restart: %q %v", v, err)
	}
}

// TestCluster: the cluster serves a key from the master of its slot; when
// that master is killed its replica takes over, keeping what was written,
// and the killed node rejoins as a replica.
func TestCluster(t *testing.T) {
	c := StartClusterWith(t, ClusterConfig{Password: "pw"})
	if m := c.Masters(); len(m) != 3 {
		t.Fatalf("masters: %v", m)
	}
	ctx := context.Background()
	old := c.MasterFor("{k}")
	// WAIT counts the replicas that have this connection's writes: SET
	// and WAIT on one connection to the key's master.
	m := redis.NewClient(&redis.Options{Addr: old, Password: "pw"})
	defer m.Close()
	conn := m.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "{k}", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	c.Kill(old)
	c.WaitOK()
	if now := c.MasterFor("{k}"); now == old {
		t.Fatalf("%s still serves the key", old)
	}
	cl := redis.NewClient(&redis.Options{Addr: c.MasterFor("{k}"), Password: "pw"})
	defer cl.Close()
	if v, err := cl.Get(ctx, "{k}").Result(); err != nil || v != "v" {
		t.Fatalf("after the failover: %q %v", v, err)
	}
	c.Restart(old)
	c.WaitOK()
	c.WaitReplicated()
}

// TestSentinel: the sentinels promote the replica of a killed master, which
// keeps what was written; the old master rejoins as a replica.
func TestSentinel(t *testing.T) {
	s := StartSentinelWith(t, SentinelConfig{Password: "pw", SentinelPassword: "spw"})
	ctx := context.Background()
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName(), SentinelAddrs: s.SentinelAddrs(), Password: "pw", SentinelPassword: "spw"})
	defer fc.Close()
	if err := fc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	first := s.Master()
	if first != s.DataAddrs()[0] {
		t.Fatalf("master %s, want %s", first, s.DataAddrs()[0])
	}
	if killed := s.KillMaster(); killed != first {
		t.Fatalf("killed %s", killed)
	}
	promoted := s.WaitPromoted(first)
	if promoted != s.DataAddrs()[1] {
		t.Fatalf("promoted %s", promoted)
	}
	cl := redis.NewClient(&redis.Options{Addr: promoted, Password: "pw"})
	defer cl.Close()
	if v, err := cl.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("after the failover: %q %v", v, err)
	}
	s.Rejoin(first)
}
