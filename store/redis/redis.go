// Package redis is the session store in Redis, the Caddy module
// http.ownid_sessions.stores.redis, so that several Caddy instances share
// their sessions. Every write is one Lua script, atomic on the server. It
// runs on one server, on Redis Cluster or on a master watched by Redis
// Sentinel (topology.go).
package redis

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

func init() {
	caddy.RegisterModule(Store{})
}

// clients holds one client per connection setting, shared by every
// config that names it, so a reload reuses the connections.
var clients = caddy.NewUsagePool()

const (
	defaultKeyPrefix = "ownid_sessions:"
	defaultTimeout   = 2 * time.Second
)

// Store keeps sessions in Redis, so several Caddy instances share them.
// Every operation is one Lua script, atomic on the server: the per-account
// limit, If-Match, the idle timeout (the key's TTL) and the per-account
// index change together or not at all. It answers exactly as the memory
// store does.
type Store struct {
	// redis://[user:pass@]host:port/db, or rediss:// for TLS: one Redis
	// server. Exactly one of url, cluster and sentinel is set.
	// Placeholders such as {env.REDIS_PASSWORD} are replaced when the
	// config loads, here and in every address, name and password below.
	URL string `json:"url,omitempty"`

	// The host:port of one or more nodes of a Redis Cluster (the others
	// are found from them). An account's keys share one hash slot, so
	// every operation is on one node. Not with max_live_sessions.
	Cluster []string `json:"cluster,omitempty"`

	// A master watched by Redis Sentinel: the store asks the sentinels
	// where the master is and follows them when they promote a replica.
	Sentinel *Sentinel `json:"sentinel,omitempty"`

	// The user and password of the data nodes with cluster or sentinel
	// (with url they are part of the URL). Default: none.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// With cluster or sentinel: reads (a session, a list) go to the
	// master or one of its replicas at random, writes to the master. A
	// replica may lag: a read may miss the latest writes, unless every
	// replica confirms each write (wait_replicas). Default: false, every
	// command goes to the master.
	ReplicaReads bool `json:"replica_reads,omitempty"`

	// If set, every write (create, update, delete, delete all) is
	// confirmed by this many replicas of its master (Redis WAIT on the
	// connection that wrote) before it succeeds. If fewer confirm it
	// within wait_timeout, the request gets 503 store-outcome-unknown:
	// the master has the write, which a failover may still lose. With
	// as many as there are replicas, no acknowledged write is lost when
	// a replica takes over, and replica reads see every acknowledged
	// write. Default: 0, writes are not waited for.
	WaitReplicas int `json:"wait_replicas,omitempty"`

	// How long a write waits for wait_replicas, on top of timeout.
	// Default: timeout.
	WaitTimeout caddy.Duration `json:"wait_timeout,omitempty"`

	// Prefix of every key the store writes. Default: "ownid_sessions:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// The longest one store operation may take, connecting included; past
	// it the request gets 503: store-unavailable if nothing was sent,
	// store-outcome-unknown if a write was sent and may have been applied.
	// A write with wait_replicas may take wait_timeout more. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// If set, the most live sessions the store holds for all apps and
	// accounts; beyond it creates get 503. It keeps one more sorted set of
	// all sessions, so it cannot be used with cluster (its keys would
	// span slots). Default: unset (Redis's maxmemory is the bound).
	MaxLiveSessions int `json:"max_live_sessions,omitempty"`

	// Redis used as a cache: let the store load on a Redis whose
	// maxmemory-policy evicts keys (it refuses to otherwise). Evicted
	// sessions vanish before they expire; creates count only the sessions
	// still there, and lists drop index entries whose session is gone.
	// Default: off.
	AllowEviction bool `json:"allow_eviction,omitempty"`

	client  goredis.UniversalClient
	pooled  *redisClient
	poolKey string
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.ownid_sessions.stores.redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision checks the topology and takes the shared client. It does not
// wait for Redis: a Redis that is down makes requests answer 503 until it
// is back, not Caddy fail to start.
func (s *Store) Provision(ctx caddy.Context) error {
	if s.KeyPrefix == "" {
		s.KeyPrefix = defaultKeyPrefix
	}
	if s.Timeout == 0 {
		s.Timeout = caddy.Duration(defaultTimeout)
	}
	if s.Timeout < 0 || s.MaxLiveSessions < 0 {
		return fmt.Errorf("store redis: timeout and max_live_sessions must be positive")
	}
	if err := s.connect(); err != nil {
		return err
	}
	return s.ready(ctx, ctx.Logger())
}

// redactError is err's message with the URL's credentials cut out.
func redactError(err error, raw string) string {
	msg := err.Error()
	if u := strings.LastIndex(raw, "@"); u > 0 {
		msg = strings.ReplaceAll(msg, raw[:u], "redis://…")
	}
	return msg
}

// Cleanup releases this config's hold on the client.
func (s *Store) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	_, err := clients.Delete(s.poolKey)
	return err
}

// Describe names the store for the admin endpoint by its server and key
// prefix, "redis:<host:port> <prefix>" ("redis-cluster:<first node>…
// <prefix>", "redis-sentinel:<master name> <prefix>"), without
// credentials.
func (s *Store) Describe() string { return s.describe() }

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store redis <url> | cluster <addr...> | sentinel <master-name> <addr...> {
//		key_prefix        <prefix>
//		timeout           <duration>
//		max_live_sessions <n>
//		username          <user>
//		password          <password>
//		sentinel_username <user>
//		sentinel_password <password>
//		replica_reads     off|on
//		wait_replicas     <n> [<timeout>]
//		allow_eviction
//	}
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store type
	if err := s.unmarshalTopology(d); err != nil {
		return err
	}
	for d.NextBlock(0) {
		sub := d.Val()
		if sub == "allow_eviction" {
			if d.NextArg() {
				return d.ArgErr()
			}
			s.AllowEviction = true
			continue
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		switch sub {
		case "key_prefix":
			s.KeyPrefix = d.Val()
		case "timeout":
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("store redis timeout: invalid duration %q", d.Val())
			}
			s.Timeout = caddy.Duration(dur)
		case "max_live_sessions":
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("store redis max_live_sessions: want a positive integer, got %q", d.Val())
			}
			s.MaxLiveSessions = n
		default:
			if err := s.unmarshalTopologyOption(d, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// Interface guards
var (
	_ store.Store           = (*Store)(nil)
	_ store.Describer       = (*Store)(nil)
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.CleanerUpper    = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
)
