package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// How long the helpers wait for Redis to settle (start, failover, resync)
// before they fail the test.
const settleTimeout = 20 * time.Second

// ClusterConfig sets up a Cluster.
type ClusterConfig struct {
	// Password, when set, is required of every client (requirepass) and
	// used by replicas towards their masters (masterauth).
	Password string
}

// Cluster is a Redis Cluster of six redis-server processes on free loopback
// ports, three masters with one replica each, made by redis-cli --cluster
// create; each master holds a key "redistest:{<n>}", so that CLUSTER SLOTS
// lists its replica. Every node writes each command to its append-only file before
// answering, so a killed node loses nothing acknowledged. A node is
// considered failed after one second (cluster-node-timeout 1000), and then
// its replica takes over. Everything is killed when the test ends.
type Cluster struct {
	t        testing.TB
	nodes    []*Server
	password string
}

// StartCluster runs a Cluster without a password for t and waits until it
// serves every slot and every master has an in-sync replica.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterConfig{})
}

// StartClusterWith is StartCluster with cfg.
func StartClusterWith(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	bin := binary(t, "redis-server")
	cli := binary(t, "redis-cli")
	c := &Cluster{t: t, password: cfg.Password}
	for range 6 {
		port, busPort, dir := freePort(t), freePort(t), t.TempDir()
		args := append([]string{bin}, baseArgs(port, dir, true)...)
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-port", strconv.Itoa(busPort),
			// A replica takes over however long it was cut off.
			"--cluster-replica-validity-factor", "0")
		if cfg.Password != "" {
			args = append(args, "--requirepass", cfg.Password, "--masterauth", cfg.Password)
		}
		c.nodes = append(c.nodes, startServer(t, port, dir, cfg.Password, args))
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	create := exec.CommandContext(ctx, cli, append(append([]string{"--cluster", "create"}, c.Addrs()...),
		"--cluster-replicas", "1", "--cluster-yes")...)
	create.Env = os.Environ()
	if cfg.Password != "" {
		// Not -a: the password stays out of the process list.
		create.Env = append(create.Env, "REDISCLI_AUTH="+cfg.Password)
	}
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	c.seed()
	c.WaitReplicated()
	// CLUSTER SLOTS leaves out a replica until it has replicated
	// something (seed): a client loading the slots now knows them all.
	c.waitFor("CLUSTER SLOTS to list a replica for every master", func(ctx context.Context) error {
		for _, n := range c.nodes {
			slots, err := c.slotMasters(ctx, n.Addr())
			if err != nil {
				return err
			}
			for _, s := range slots {
				if len(s.Nodes) < 2 {
					return fmt.Errorf("%s lists no replica for slots %d-%d", n.Addr(), s.Start, s.End)
				}
			}
		}
		return nil
	})
	return c
}

// seed writes a key to every master, so that each has replicated
// something.
func (c *Cluster) seed() {
	c.t.Helper()
	ctx := context.Background()
	masters := c.Masters()
	seeded := map[string]bool{}
	for i := 0; len(seeded) < len(masters); i++ {
		if i > 1000 {
			c.t.Fatalf("no key found for every master: %v", seeded)
		}
		key := fmt.Sprintf("redistest:{%d}", i)
		m := c.MasterFor(key)
		if seeded[m] {
			continue
		}
		cl := c.client(m)
		err := cl.Set(ctx, key, "seed", 0).Err()
		cl.Close()
		if err != nil {
			c.t.Fatal(err)
		}
		seeded[m] = true
	}
}

// Addrs are the host:port of all six nodes, killed ones included.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// node is the node at addr, or the test fails.
func (c *Cluster) node(addr string) *Server {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	c.t.Fatalf("no cluster node at %s", addr)
	return nil
}

// client is a plain client of one node, which the caller closes.
func (c *Cluster) client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: c.password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, DialerRetries: 1})
}

// live is a node that runs, or the test fails.
func (c *Cluster) live() string {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.running() {
			return n.Addr()
		}
	}
	c.t.Fatal("every cluster node is down")
	return ""
}

// slotMasters is the master of each slot range as the node at addr sees it.
func (c *Cluster) slotMasters(ctx context.Context, addr string) ([]redis.ClusterSlot, error) {
	cl := c.client(addr)
	defer cl.Close()
	return cl.ClusterSlots(ctx).Result()
}

// Masters are the addresses of the masters that serve slots now, as a
// running node sees them.
func (c *Cluster) Masters() []string {
	c.t.Helper()
	masters, err := c.masters(context.Background(), c.live())
	if err != nil {
		c.t.Fatal(err)
	}
	return masters
}

func (c *Cluster) masters(ctx context.Context, addr string) ([]string, error) {
	slots, err := c.slotMasters(ctx, addr)
	if err != nil {
		return nil, err
	}
	var masters []string
	for _, s := range slots {
		if !slices.Contains(masters, s.Nodes[0].Addr) {
			masters = append(masters, s.Nodes[0].Addr)
		}
	}
	return masters, nil
}

// MasterFor is the address of the master that serves key's slot now.
func (c *Cluster) MasterFor(key string) string {
	c.t.Helper()
	ctx := context.Background()
	addr := c.live()
	cl := c.client(addr)
	defer cl.Close()
	slot, err := cl.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	slots, err := cl.ClusterSlots(ctx).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			return s.Nodes[0].Addr
		}
	}
	c.t.Fatalf("no master serves slot %d", slot)
	return ""
}

// ReplicasOf are the addresses of the replicas of the master at addr.
// (CLUSTER SLOTS would leave out those that have not replicated anything
// yet.)
func (c *Cluster) ReplicasOf(master string) []string {
	c.t.Helper()
	ctx := context.Background()
	cl := c.client(master)
	defer cl.Close()
	id, err := cl.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		c.t.Fatal(err)
	}
	lines, err := cl.Do(ctx, "CLUSTER", "REPLICAS", id).StringSlice()
	if err != nil {
		c.t.Fatal(err)
	}
	var replicas []string
	for _, line := range lines {
		// <id> <ip:port@cport> <flags> <master> ...
		if f := strings.Fields(line); len(f) > 1 {
			replicas = append(replicas, strings.SplitN(f[1], "@", 2)[0])
		}
	}
	return replicas
}

// Kill stops the node at addr at once (SIGKILL).
func (c *Cluster) Kill(addr string) {
	c.t.Helper()
	c.node(addr).Kill()
}

// Restart starts a killed node again with its files: it rejoins the
// cluster, as a replica of whoever took its slots over.
func (c *Cluster) Restart(addr string) {
	c.t.Helper()
	c.node(addr).Restart()
}

// WaitOK waits until every running node says cluster_state:ok with all
// 16384 slots served, each by a running master, or fails the test after
// 20 s. After a master is killed, it returns once its replica has taken
// over.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	c.waitFor("the cluster to be ok", func(ctx context.Context) error {
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			cl := c.client(n.Addr())
			info, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			if err != nil {
				return err
			}
			for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384"} {
				if !strings.Contains(info, want+"\r\n") {
					return fmt.Errorf("%s: no %s", n.Addr(), want)
				}
			}
			slots, err := c.slotMasters(ctx, n.Addr())
			if err != nil {
				return err
			}
			covered := 0
			for _, s := range slots {
				if !c.node(s.Nodes[0].Addr).running() {
					return fmt.Errorf("%s: slots %d-%d still on %s, which is down", n.Addr(), s.Start, s.End, s.Nodes[0].Addr)
				}
				covered += int(s.End - s.Start + 1)
			}
			if covered != 16384 {
				return fmt.Errorf("%s: %d slots covered", n.Addr(), covered)
			}
		}
		return nil
	})
}

// WaitReplicated waits until every master has a replica whose link is up
// and caught up, or fails the test after 20 s.
func (c *Cluster) WaitReplicated() {
	c.t.Helper()
	c.waitFor("every master to have a replica", func(ctx context.Context) error {
		masters, err := c.masters(ctx, c.live())
		if err != nil {
			return err
		}
		for _, m := range masters {
			if err := replicated(ctx, c.client(m)); err != nil {
				return fmt.Errorf("%s: %v", m, err)
			}
		}
		return nil
	})
}

// replicated says whether the master cl talks to has an online replica
// that has confirmed at least all the master had sent when asked (so WAIT
// counts it promptly), and closes cl. Replicas confirm on their own once a
// second: it may take that long.
func replicated(ctx context.Context, cl *redis.Client) error {
	defer cl.Close()
	fields, err := replicationInfo(ctx, cl)
	if err != nil {
		return err
	}
	if fields["role"] != "master" {
		return fmt.Errorf("not a master")
	}
	sent, _ := strconv.ParseInt(fields["master_repl_offset"], 10, 64)
	for {
		for i := 0; ; i++ {
			replica, ok := fields["slave"+strconv.Itoa(i)]
			if !ok {
				break
			}
			var acked int64 = -1
			for _, kv := range strings.Split(replica, ",") {
				if v, ok := strings.CutPrefix(kv, "offset="); ok {
					acked, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			if strings.Contains(replica, ",state=online,") && acked >= sent {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no online replica has confirmed offset %d: %v", sent, fields)
		case <-time.After(20 * time.Millisecond):
		}
		if fields, err = replicationInfo(ctx, cl); err != nil {
			return err
		}
	}
}

// replicationInfo is INFO replication as a map.
func replicationInfo(ctx context.Context, cl *redis.Client) (map[string]string, error) {
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields, nil
}

// waitFor retries check until it returns nil, or fails the test after
// settleTimeout with check's last error.
func (c *Cluster) waitFor(what string, check func(context.Context) error) {
	c.t.Helper()
	waitFor(c.t, what, check)
}

func waitFor(t testing.TB, what string, check func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", settleTimeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
