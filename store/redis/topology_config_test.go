package redis

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	goredis "github.com/redis/go-redis/v9"
)

// The secret of these tests; no error or description may show it.
const secret = "s3cret"

func TestTopologyCaddyfile(t *testing.T) {
	var c Store
	err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`redis cluster 10.0.0.1:7000 {env.REDIS_NODE} {
		username      app
		password      {env.REDIS_PASSWORD}
		replica_reads on
		wait_replicas 1 250ms
		key_prefix    p:
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Cluster, " ") != "10.0.0.1:7000 {env.REDIS_NODE}" || c.Username != "app" || c.Password != "{env.REDIS_PASSWORD}" ||
		!c.ReplicaReads || c.WaitReplicas != 1 || time.Duration(c.WaitTimeout) != 250*time.Millisecond || c.KeyPrefix != "p:" || c.URL != "" || c.Sentinel != nil {
		t.Fatalf("cluster parsed %+v", c)
	}

	var s Store
	err = s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`redis sentinel mymaster 10.0.0.1:26379 10.0.0.2:26379 {
		sentinel_username watcher
		sentinel_password {env.SENTINEL_PASSWORD}
		password          pw
		replica_reads     off
		wait_replicas     2
		timeout           1s
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Sentinel{MasterName: "mymaster", Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, Username: "watcher", Password: "{env.SENTINEL_PASSWORD}"}
	if s.Sentinel == nil || s.Sentinel.MasterName != want.MasterName || strings.Join(s.Sentinel.Addrs, " ") != strings.Join(want.Addrs, " ") ||
		s.Sentinel.Username != want.Username || s.Sentinel.Password != want.Password ||
		s.Password != "pw" || s.ReplicaReads || s.WaitReplicas != 2 || s.WaitTimeout != 0 || time.Duration(s.Timeout) != time.Second || s.URL != "" || s.Cluster != nil {
		t.Fatalf("sentinel parsed %+v %+v", s, s.Sentinel)
	}

	for input, want := range map[string]string{
		"redis cluster":           "store redis cluster: at least one node address",
		"redis sentinel mymaster": "store redis sentinel: the master name and at least one sentinel address",
		"redis sentinel":          "store redis sentinel: the master name and at least one sentinel address",
		"redis redis://x {\n sentinel_password s3cret\n}":        "store redis sentinel_password: only with store redis sentinel",
		"redis cluster a:1 {\n sentinel_username u\n}":           "store redis sentinel_username: only with store redis sentinel",
		"redis cluster a:1 {\n password my s3cret\n}":            "store redis password: one value is expected",
		"redis cluster a:1 {\n username me s3cret\n}":            "store redis username: one value is expected",
		"redis sentinel m a:1 {\n sentinel_password a s3cret\n}": "store redis sentinel_password: one value is expected",
		"redis cluster a:1 {\n password\n}":                      "wrong argument count",
		"redis cluster a:1 {\n replica_reads maybe\n}":           `store redis replica_reads: want on or off, got "maybe"`,
		"redis cluster a:1 {\n replica_reads on off\n}":          "store redis replica_reads: one value is expected",
		"redis cluster a:1 {\n wait_replicas 0\n}":               "store redis wait_replicas: want a positive number of replicas",
		"redis cluster a:1 {\n wait_replicas all\n}":             "store redis wait_replicas: want a positive number of replicas",
		"redis cluster a:1 {\n wait_replicas 1 soon\n}":          `store redis wait_replicas: invalid timeout "soon"`,
		"redis cluster a:1 {\n wait_replicas 1 1s 2\n}":          "store redis wait_replicas: want <n> [<timeout>]",
		"redis cluster a:1 {\n replicas 1\n}":                    `store redis: unrecognized subdirective "replicas"`,
		"redis redis://u:my s3cret@host:6379/0":                  "store redis: wrong argument count",
	} {
		var s Store
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), secret) {
			t.Errorf("%q: error %v, want it to contain %q and no secret", input, err, want)
		}
	}
}

// TestTopologyJSON: the JSON names of the settings.
func TestTopologyJSON(t *testing.T) {
	var c, s Store
	if err := json.Unmarshal([]byte(`{"cluster": ["10.0.0.1:7000"], "username": "app", "password": "pw",
		"replica_reads": true, "wait_replicas": 1, "wait_timeout": "250ms"}`), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Cluster) != 1 || c.Username != "app" || c.Password != "pw" || !c.ReplicaReads || c.WaitReplicas != 1 || time.Duration(c.WaitTimeout) != 250*time.Millisecond {
		t.Fatalf("cluster: %+v", c)
	}
	if err := json.Unmarshal([]byte(`{"sentinel": {"master_name": "mymaster", "addrs": ["10.0.0.1:26379"],
		"sentinel_username": "watcher", "sentinel_password": "spw"}, "password": "pw"}`), &s); err != nil {
		t.Fatal(err)
	}
	if n := s.Sentinel; n == nil || n.MasterName != "mymaster" || len(n.Addrs) != 1 || n.Username != "watcher" || n.Password != "spw" || s.Password != "pw" {
		t.Fatalf("sentinel: %+v %+v", s, s.Sentinel)
	}
}

// TestTopologyProvisionErrors: a topology that cannot work fails at load,
// naming the setting, never showing a password.
func TestTopologyProvisionErrors(t *testing.T) {
	t.Setenv("OWNID_TEST_SECRET", secret)
	sentinel := func(name string, addrs ...string) *Sentinel {
		return &Sentinel{MasterName: name, Addrs: addrs, Password: secret}
	}
	for _, tt := range []struct {
		s    Store
		want string
	}{
		{Store{URL: "redis://h:1", Cluster: []string{"a:1"}, Password: secret}, "store redis: give one of url, cluster and sentinel, not url and cluster"},
		{Store{Cluster: []string{"a:1"}, Sentinel: sentinel("m", "a:1")}, "not cluster and sentinel"},
		{Store{URL: "redis://h:1", Cluster: []string{"a:1"}, Sentinel: sentinel("m", "a:1")}, "not url and cluster and sentinel"},
		{Store{URL: "redis://h:1", Password: secret}, "store redis username, password: with url"},
		{Store{URL: "redis://h:1", Username: "u"}, "store redis username, password: with url"},
		{Store{URL: "redis://:" + secret + "@h:1", ReplicaReads: true}, "store redis replica_reads"},
		{Store{URL: "{env.OWNID_TEST_UNSET}"}, "store redis: a URL is required"},
		{Store{Cluster: []string{"a:1"}, MaxLiveSessions: 5, Password: secret}, "store redis max_live_sessions: cannot be used with cluster"},
		{Store{Cluster: []string{"a:1", "redis://u:" + secret + "@h:1"}}, "store redis cluster: address 2 is not host:port"},
		{Store{Cluster: []string{"{env.OWNID_TEST_SECRET}"}}, "store redis cluster: address 1 is not host:port"},
		{Store{Cluster: []string{"{env.OWNID_TEST_UNSET}"}}, "store redis cluster: address 1 is not host:port"},
		{Store{Sentinel: sentinel("", "a:1")}, "store redis sentinel: the master name is required"},
		{Store{Sentinel: sentinel("{env.OWNID_TEST_UNSET}", "a:1")}, "store redis sentinel: the master name is required"},
		{Store{Sentinel: sentinel("m")}, "store redis sentinel: at least one sentinel address"},
		{Store{Sentinel: sentinel("m", "a:1", secret)}, "store redis sentinel: sentinel address 2 is not host:port"},
		{Store{Cluster: []string{"a:1"}, WaitReplicas: -1}, "store redis wait_replicas"},
		{Store{Cluster: []string{"a:1"}, WaitReplicas: 1, WaitTimeout: -1}, "store redis wait_replicas"},
		{Store{Cluster: []string{"a:1"}, WaitTimeout: caddy.Duration(time.Second)}, "store redis wait_timeout: needs wait_replicas"},
	} {
		err := tt.s.Provision(newTestContext(t))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("%+v: error %v, want it to say %q without the password", tt.s, err, tt.want)
		}
		tt.s.Cleanup()
	}
}

// TestTopologyClients: configs that name the same connection share one
// client (a reload reuses it), placeholders replaced; any difference in
// what defines the connection makes another. The pool key shows no
// password.
func TestTopologyClients(t *testing.T) {
	t.Setenv("OWNID_TEST_NODE", "127.0.0.1:7001")
	t.Setenv("OWNID_TEST_MASTER", "mymaster")
	t.Setenv("OWNID_TEST_SECRET", secret)
	t.Setenv("OWNID_TEST_USER", "app")
	// Nothing listens there: each Provision's check of the eviction policy
	// waits for its timeout, kept short.
	short := caddy.Duration(100 * time.Millisecond)
	cluster := Store{Cluster: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Username: "app", Password: secret, Timeout: short}
	sentinel := Store{Sentinel: &Sentinel{MasterName: "mymaster", Addrs: []string{"127.0.0.1:26379"}, Username: "app", Password: secret}, Password: secret, Timeout: short}
	same := func(cfg Store, edit func(*Store)) *Store {
		c := cfg
		if c.Sentinel != nil {
			sn := *c.Sentinel
			c.Sentinel = &sn
		}
		edit(&c)
		return provision(t, c)
	}
	for name, tt := range map[string]struct {
		base Store
		edit func(*Store)
		same bool
	}{
		"cluster, again":                 {cluster, func(*Store) {}, true},
		"cluster, another key prefix":    {cluster, func(s *Store) { s.KeyPrefix = "other:" }, true},
		"cluster, wait_replicas":         {cluster, func(s *Store) { s.WaitReplicas = 1 }, true},
		"cluster, node placeholder":      {cluster, func(s *Store) { s.Cluster[1] = "{env.OWNID_TEST_NODE}" }, true},
		"cluster, password placeholder":  {cluster, func(s *Store) { s.Password = "{env.OWNID_TEST_SECRET}" }, true},
		"cluster, username placeholder":  {cluster, func(s *Store) { s.Username = "{env.OWNID_TEST_USER}" }, true},
		"cluster, another password":      {cluster, func(s *Store) { s.Password = "other" }, false},
		"cluster, another node":          {cluster, func(s *Store) { s.Cluster = []string{"127.0.0.1:7000"} }, false},
		"cluster, replica reads":         {cluster, func(s *Store) { s.ReplicaReads = true }, false},
		"cluster, another timeout":       {cluster, func(s *Store) { s.Timeout = caddy.Duration(time.Second) }, false},
		"sentinel, again":                {sentinel, func(*Store) {}, true},
		"sentinel, master placeholder":   {sentinel, func(s *Store) { s.Sentinel.MasterName = "{env.OWNID_TEST_MASTER}" }, true},
		"sentinel, password placeholder": {sentinel, func(s *Store) { s.Sentinel.Password = "{env.OWNID_TEST_SECRET}" }, true},
		"sentinel, another master":       {sentinel, func(s *Store) { s.Sentinel.MasterName = "other" }, false},
		"sentinel, its own password":     {sentinel, func(s *Store) { s.Sentinel.Password = "other" }, false},
		"sentinel, its own username":     {sentinel, func(s *Store) { s.Sentinel.Username = "other" }, false},
		"sentinel, data password":        {sentinel, func(s *Store) { s.Password = "other" }, false},
		"sentinel, replica reads":        {sentinel, func(s *Store) { s.ReplicaReads = true }, false},
	} {
		a, b := same(tt.base, func(*Store) {}), same(tt.base, tt.edit)
		if (a.client == b.client) != tt.same {
			t.Errorf("%s: shares the client: %v, want %v", name, a.client == b.client, tt.same)
		}
		if strings.Contains(a.poolKey, secret) {
			t.Errorf("%s: the pool key holds the password", name)
		}
	}
	// Each topology gets its kind of client.
	if _, ok := same(cluster, func(*Store) {}).client.(*goredis.ClusterClient); !ok {
		t.Error("cluster: not a cluster client")
	}
	if _, ok := same(sentinel, func(*Store) {}).client.(*goredis.Client); !ok {
		t.Error("sentinel: not a failover client")
	}
	if _, ok := same(sentinel, func(s *Store) { s.ReplicaReads = true }).client.(*goredis.ClusterClient); !ok {
		t.Error("sentinel with replica reads: not a failover cluster client")
	}
}

// TestTopologyDescribe: the description names the topology, a node or the
// master, and the prefix, never a password.
func TestTopologyDescribe(t *testing.T) {
	t.Setenv("OWNID_TEST_NODE", "redis-0.internal:6379")
	for want, s := range map[string]Store{
		"redis-cluster:redis-0.internal:6379 p:":  {Cluster: []string{"{env.OWNID_TEST_NODE}"}, Password: secret, KeyPrefix: "p:"},
		"redis-cluster:10.0.0.1:7000… p:":         {Cluster: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, Username: "app", Password: secret, KeyPrefix: "p:"},
		"redis-sentinel:mymaster ownid_sessions:": {Sentinel: &Sentinel{MasterName: "mymaster", Addrs: []string{"10.0.0.1:26379"}, Password: secret}, Password: secret, KeyPrefix: "ownid_sessions:"},
	} {
		if got := s.Describe(); got != want || strings.Contains(got, secret) {
			t.Errorf("%+v described as %q, want %q", s, got, want)
		}
	}
}
