package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// The topologies: one server (url), Redis Cluster (cluster) or a master
// watched by Redis Sentinel (sentinel), and how writes are confirmed by
// replicas (wait_replicas).

// Sentinel names a master that Redis Sentinel watches; the store asks the
// sentinels where it is and follows them when they promote a replica.
type Sentinel struct {
	// The name the sentinels monitor the master by (sentinel monitor
	// <name> ...). Placeholders are replaced.
	MasterName string `json:"master_name,omitempty"`

	// The host:port of one or more sentinels (the others are found from
	// them). Placeholders are replaced.
	Addrs []string `json:"addrs,omitempty"`

	// The user and password of the sentinels themselves (requirepass on
	// the sentinels), not of the data nodes: those are the store's
	// username and password. Placeholders are replaced. Default: none.
	Username string `json:"sentinel_username,omitempty"`
	Password string `json:"sentinel_password,omitempty"`
}

// connection is everything that defines a client: two configs with the
// same connection share one client. It holds passwords: it is only ever
// hashed, never logged.
type connection struct {
	Topology         string
	URL              string   `json:",omitempty"`
	Addrs            []string `json:",omitempty"`
	MasterName       string   `json:",omitempty"`
	Username         string   `json:",omitempty"`
	Password         string   `json:",omitempty"`
	SentinelUsername string   `json:",omitempty"`
	SentinelPassword string   `json:",omitempty"`
	ReplicaReads     bool     `json:",omitempty"`
	Timeout          time.Duration
}

// poolKey names the connection in the clients pool by a hash, so that no
// password is kept as a key anywhere.
func (c connection) poolKey() string {
	b, _ := json.Marshal(c)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// connect checks the topology settings, replaces their placeholders and
// takes the shared client for them (Provision's part after the defaults).
func (s *Store) connect() error {
	repl := caddy.NewReplacer()
	replace := func(v string) string { return repl.ReplaceKnown(v, "") }
	var set []string
	if s.URL != "" {
		set = append(set, "url")
	}
	if len(s.Cluster) > 0 {
		set = append(set, "cluster")
	}
	if s.Sentinel != nil {
		set = append(set, "sentinel")
	}
	switch {
	case len(set) == 0:
		return fmt.Errorf("store redis: a URL is required (redis://host:port/db), or cluster or sentinel")
	case len(set) > 1:
		return fmt.Errorf("store redis: give one of url, cluster and sentinel, not %s", strings.Join(set, " and "))
	}
	if s.WaitReplicas < 0 || s.WaitTimeout < 0 {
		return fmt.Errorf("store redis wait_replicas, wait_timeout: the number of replicas and the timeout must be positive")
	}
	if s.WaitTimeout > 0 && s.WaitReplicas == 0 {
		return fmt.Errorf("store redis wait_timeout: needs wait_replicas, the number of replicas to wait for")
	}
	timeout := time.Duration(s.Timeout)
	conn := connection{Timeout: timeout, ReplicaReads: s.ReplicaReads,
		Username: replace(s.Username), Password: replace(s.Password)}
	if s.URL != "" {
		if s.Username != "" || s.Password != "" {
			return fmt.Errorf("store redis username, password: with url, the credentials are part of the URL")
		}
		if s.ReplicaReads {
			return fmt.Errorf("store redis replica_reads: one server (url) has no replicas to read from; use cluster or sentinel")
		}
		conn.Topology, conn.URL = "url", replace(s.URL)
		if conn.URL == "" {
			return fmt.Errorf("store redis: a URL is required (redis://host:port/db)")
		}
	}
	if len(s.Cluster) > 0 {
		if s.MaxLiveSessions > 0 {
			return fmt.Errorf("store redis max_live_sessions: cannot be used with cluster (its key would span hash slots)")
		}
		conn.Topology = "cluster"
		for i, a := range s.Cluster {
			addr := replace(a)
			if _, _, err := net.SplitHostPort(addr); err != nil || addr == "" {
				// Say which, not what: a misplaced value may be a secret.
				return fmt.Errorf("store redis cluster: address %d is not host:port", i+1)
			}
			conn.Addrs = append(conn.Addrs, addr)
		}
	}
	if s.Sentinel != nil {
		conn.Topology = "sentinel"
		conn.MasterName = replace(s.Sentinel.MasterName)
		if conn.MasterName == "" {
			return fmt.Errorf("store redis sentinel: the master name is required")
		}
		if len(s.Sentinel.Addrs) == 0 {
			return fmt.Errorf("store redis sentinel: at least one sentinel address (host:port) is required")
		}
		for i, a := range s.Sentinel.Addrs {
			addr := replace(a)
			if _, _, err := net.SplitHostPort(addr); err != nil || addr == "" {
				return fmt.Errorf("store redis sentinel: sentinel address %d is not host:port", i+1)
			}
			conn.Addrs = append(conn.Addrs, addr)
		}
		conn.SentinelUsername = replace(s.Sentinel.Username)
		conn.SentinelPassword = replace(s.Sentinel.Password)
	}
	var newClient func() goredis.UniversalClient
	switch conn.Topology {
	case "url":
		opts, err := goredis.ParseURL(conn.URL)
		if err != nil {
			// The URL may hold a password: say what is wrong, not the URL.
			return fmt.Errorf("store redis: the URL cannot be parsed: %v", redactError(err, conn.URL))
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout, timeout, timeout, timeout
		// See runWrite and classify (whatever the URL's query says).
		opts.MaxRetries, opts.ContextTimeoutEnabled = -1, false
		newClient = func() goredis.UniversalClient { return goredis.NewClient(opts) }
	case "cluster":
		opts := &goredis.ClusterOptions{
			Addrs: conn.Addrs, Username: conn.Username, Password: conn.Password,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
			// No command is sent twice by a node's client; the cluster
			// client retries reads on another node, but writes do not
			// go through it (runWrite).
			MaxRetries: -1,
			// Reads go to the master or a replica of the key's slot,
			// at random, skipping nodes that fail.
			ReadOnly: conn.ReplicaReads, RouteRandomly: conn.ReplicaReads,
		}
		newClient = func() goredis.UniversalClient { return reloading(goredis.NewClusterClient(opts)) }
	case "sentinel":
		opts := &goredis.FailoverOptions{
			MasterName: conn.MasterName, SentinelAddrs: conn.Addrs,
			SentinelUsername: conn.SentinelUsername, SentinelPassword: conn.SentinelPassword,
			Username: conn.Username, Password: conn.Password,
			DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout,
			MaxRetries: -1,
		}
		if conn.ReplicaReads {
			// A cluster client over the master and its replicas (one
			// slot range, all of them): reads go to any of them at
			// random, writes to the master. ReplicaOnly would read
			// only from replicas; RouteRandomly keeps the master in
			// the rotation, as with cluster.
			opts.RouteRandomly = true
			// Here MaxRetries is the cluster client's MaxRedirects
			// (its node clients keep none): a read that fails on a
			// replica is tried again, then on another node, the
			// failed one set aside, as with cluster. Writes do not go
			// through that loop (runWrite).
			opts.MaxRetries = 3
			newClient = func() goredis.UniversalClient { return reloading(goredis.NewFailoverClusterClient(opts)) }
		} else {
			newClient = func() goredis.UniversalClient {
				c := goredis.NewFailoverClient(opts)
				// Its dialer first asks the sentinels where the master
				// is; a failure there sent nothing either.
				c.AddHook(dialFailures{})
				return c
			}
		}
	}
	s.poolKey = conn.poolKey()
	val, _, err := clients.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		return newRedisClient(newClient()), nil
	})
	if err != nil {
		return err
	}
	s.pooled = val.(*redisClient)
	s.client = s.pooled.UniversalClient
	return nil
}

// describe is Describe: the topology, its first address (or the master's
// name) and the key prefix, without credentials.
func (s *Store) describe() string {
	repl := caddy.NewReplacer()
	switch {
	case len(s.Cluster) > 0:
		more := ""
		if len(s.Cluster) > 1 {
			more = "…"
		}
		return "redis-cluster:" + repl.ReplaceKnown(s.Cluster[0], "") + more + " " + s.KeyPrefix
	case s.Sentinel != nil:
		return "redis-sentinel:" + repl.ReplaceKnown(s.Sentinel.MasterName, "") + " " + s.KeyPrefix
	}
	if u, err := url.Parse(repl.ReplaceKnown(s.URL, "")); err == nil {
		return "redis:" + u.Host + " " + s.KeyPrefix
	}
	return "redis"
}

// unmarshalTopology reads the arguments of "store redis": a URL,
// "cluster <addr...>" or "sentinel <master-name> <addr...>".
func (s *Store) unmarshalTopology(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("store redis: a URL is required (redis://host:port/db), or cluster <addr...> or sentinel <master-name> <addr...>")
	}
	switch d.Val() {
	case "cluster":
		s.Cluster = d.RemainingArgs()
		if len(s.Cluster) == 0 {
			return d.Errf("store redis cluster: at least one node address (host:port) is required")
		}
	case "sentinel":
		args := d.RemainingArgs()
		if len(args) < 2 {
			return d.Errf("store redis sentinel: the master name and at least one sentinel address (host:port) are required")
		}
		s.Sentinel = &Sentinel{MasterName: args[0], Addrs: args[1:]}
	default:
		s.URL = d.Val()
		if d.NextArg() {
			// Not d.ArgErr: it would show the token, which may be a
			// piece of a password.
			return d.Errf("store redis: wrong argument count: one URL is expected (quote it if it holds spaces)")
		}
	}
	return nil
}

// unmarshalTopologyOption reads one of the block's subdirectives about the
// topology (the dispenser is on its first argument).
func (s *Store) unmarshalTopologyOption(d *caddyfile.Dispenser, sub string) error {
	// secret reads a value that must not appear in any error.
	secret := func() (string, error) {
		v := d.Val()
		if d.NextArg() {
			return "", d.Errf("store redis %s: one value is expected (quote it if it holds spaces)", sub)
		}
		return v, nil
	}
	var err error
	switch sub {
	case "username":
		s.Username, err = secret()
	case "password":
		s.Password, err = secret()
	case "sentinel_username", "sentinel_password":
		if s.Sentinel == nil {
			return d.Errf("store redis %s: only with store redis sentinel", sub)
		}
		if sub == "sentinel_username" {
			s.Sentinel.Username, err = secret()
		} else {
			s.Sentinel.Password, err = secret()
		}
	case "replica_reads":
		switch d.Val() {
		case "on":
			s.ReplicaReads = true
		case "off":
			s.ReplicaReads = false
		default:
			return d.Errf("store redis replica_reads: want on or off, got %q", d.Val())
		}
		if d.NextArg() {
			return d.Errf("store redis replica_reads: one value is expected, on or off")
		}
	case "wait_replicas":
		n, err := strconv.Atoi(d.Val())
		if err != nil || n <= 0 {
			return d.Errf("store redis wait_replicas: want a positive number of replicas, got %q", d.Val())
		}
		s.WaitReplicas = n
		if d.NextArg() {
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("store redis wait_replicas: invalid timeout %q", d.Val())
			}
			s.WaitTimeout = caddy.Duration(dur)
		}
		if d.NextArg() {
			return d.Errf("store redis wait_replicas: want <n> [<timeout>]")
		}
	default:
		return d.Errf("store redis: unrecognized subdirective %q", sub)
	}
	return err
}

// runWrite runs one of the write scripts and, with wait_replicas, has the
// write confirmed by replicas; the write scripts' callers run them only
// through it. Its Cmd holds the script's reply, or an error that wraps
// store.ErrOutcomeUnknown whenever the script may have been applied.
//
// Keys that are "" are left out of KEYS: a script sees none there (Redis
// Cluster would hash "" to slot 0, another slot than the owner's).
//
// The script goes to the master of its first key, as one command that is
// never retried (MaxRetries -1): a write sent again after a timeout could
// be applied twice. With wait_replicas, WAIT follows on the same
// connection, so it counts the replicas that have this write; it is sent
// as a command of its own, after the reply, because a pipeline would read
// both replies within the read timeout, which WAIT's own timeout must not
// count against, and because a script that refused (not found, If-Match,
// too many) wrote nothing to confirm.
func (s *Store) runWrite(ctx context.Context, script *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	for len(keys) > 0 && keys[len(keys)-1] == "" {
		keys = keys[:len(keys)-1]
	}
	c := s.client
	cluster, _ := s.client.(*goredis.ClusterClient)
	if cluster != nil {
		master, err := cluster.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := goredis.NewCmd(ctx)
			cmd.SetErr(err) // nothing was sent
			return cmd
		}
		c = master
	}
	client, ok := c.(*goredis.Client)
	if !ok {
		cmd := goredis.NewCmd(ctx)
		cmd.SetErr(fmt.Errorf("redis: no single client for writes (%T)", c))
		return cmd
	}
	if s.WaitReplicas == 0 {
		cmd := script.Run(ctx, client, keys, args...)
		s.classify(cmd, cluster)
		return cmd
	}
	conn := client.Conn()
	defer conn.Close()
	cmd := script.Run(ctx, conn, keys, args...)
	if s.classify(cmd, cluster); cmd.Err() != nil || refused(cmd.Val()) {
		return cmd
	}
	wait := time.Duration(s.WaitTimeout)
	if wait == 0 {
		wait = time.Duration(s.Timeout)
	}
	// The store's timeout bounds the script; WAIT has its own.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait+time.Duration(s.Timeout))
	defer cancel()
	n, err := conn.Wait(wctx, s.WaitReplicas, wait).Result()
	switch {
	case err != nil:
		cmd.SetErr(fmt.Errorf("%w: waiting for %d replicas: %w", store.ErrOutcomeUnknown, s.WaitReplicas, err))
	case n < int64(s.WaitReplicas):
		cmd.SetErr(fmt.Errorf("%w: %d of %d replicas confirmed it within %s", store.ErrOutcomeUnknown, n, s.WaitReplicas, wait))
	}
	return cmd
}

// refused says whether a write script's reply is one of its refusals,
// after which there is nothing to confirm. Any other reply counts as a
// write.
func refused(reply any) bool {
	if a, ok := reply.([]any); ok && len(a) > 0 {
		reply = a[0]
	}
	switch reply {
	case "too_many", "full", "collision", "not_found", "precondition", "mismatch":
		return true
	}
	return false
}

// classify marks cmd's error as store.ErrOutcomeUnknown unless it shows
// that the script was not run: no connection was had (a failed dial, the
// pool's timeout, or the context's end: with ContextTimeoutEnabled off, as
// every client here has it, the context bounds only getting a connection,
// and reads and writes end by their own timeouts, as net errors), or Redis
// answered with an error (the scripts fail only before their first write:
// NOSCRIPT, MOVED, READONLY, CLUSTERDOWN and the like). A timeout or a
// connection lost after sending leaves the outcome unknown. On a cluster,
// any failure has the client reload the slots, so that writes find the
// master that took over.
func (s *Store) classify(cmd *goredis.Cmd, cluster *goredis.ClusterClient) {
	err := cmd.Err()
	if err == nil || errors.Is(err, goredis.Nil) {
		return
	}
	if cluster != nil {
		cluster.ReloadState(context.Background())
	}
	var (
		reply goredis.Error
		op    *net.OpError
		dial  dialError
	)
	switch {
	case errors.As(err, &reply),
		errors.As(err, &dial),
		errors.As(err, &op) && op.Op == "dial",
		errors.Is(err, goredis.ErrPoolTimeout),
		errors.Is(err, goredis.ErrClosed),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return
	}
	cmd.SetErr(fmt.Errorf("%w: %w", store.ErrOutcomeUnknown, err))
}

// reloading has c reload its slots whenever a command fails. Otherwise,
// after a failover, a cluster client that only reads keeps asking the
// dead master (it reloads on MOVED, which a dead node never answers, and
// every minute). Writes do not go through c's hooks; classify reloads for
// them.
func reloading(c *goredis.ClusterClient) *goredis.ClusterClient {
	c.AddHook(reloadOnFailure{c})
	return c
}

type reloadOnFailure struct{ c *goredis.ClusterClient }

func (h reloadOnFailure) failed(ctx context.Context, err error) error {
	if err != nil && !errors.Is(err, goredis.Nil) {
		h.c.ReloadState(ctx)
	}
	return err
}

func (reloadOnFailure) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error { return h.failed(ctx, next(ctx, cmd)) }
}

func (h reloadOnFailure) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error { return h.failed(ctx, next(ctx, cmds)) }
}

// dialError is a failure to connect, so nothing was sent.
type dialError struct{ err error }

func (e dialError) Error() string { return e.err.Error() }
func (e dialError) Unwrap() error { return e.err }

// dialFailures marks the errors of a client's dialer as dialError.
type dialFailures struct{}

func (dialFailures) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, dialError{err}
		}
		return c, nil
	}
}

func (dialFailures) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }

func (dialFailures) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}
