// Package redis is the session store in Redis, the Caddy module
// http.ownid_sessions.stores.redis, so that several Caddy instances share
// their sessions. Every write is one Lua script, atomic on the server.
package redis

import (
	"fmt"
	"net/url"
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
	// redis://[user:pass@]host:port/db, or rediss:// for TLS. Placeholders
	// such as {env.REDIS_PASSWORD} are replaced when the config loads.
	URL string `json:"url,omitempty"`

	// Prefix of every key the store writes. Default: "ownid_sessions:".
	KeyPrefix string `json:"key_prefix,omitempty"`

	// The longest one store operation may take, connecting included; past
	// it the request gets 503 and nothing was written. Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// If set, the most live sessions the store holds for all apps and
	// accounts; beyond it creates get 503. It keeps one more sorted set of
	// all sessions, so leave it unset with Redis Cluster (its keys would
	// span slots). Default: unset (Redis's maxmemory is the bound).
	MaxLiveSessions int `json:"max_live_sessions,omitempty"`

	// Redis used as a cache: let the store load on a Redis whose
	// maxmemory-policy evicts keys (it refuses to otherwise). Evicted
	// sessions vanish before they expire; creates count only the sessions
	// still there, and lists drop index entries whose session is gone.
	// Default: off.
	AllowEviction bool `json:"allow_eviction,omitempty"`

	client  goredis.UniversalClient
	wire    *wireCounter
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

// Provision parses the URL and takes the shared client. It does not wait
// for Redis: a Redis that is down makes requests answer 503 until it is
// back, not Caddy fail to start.
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
	raw := caddy.NewReplacer().ReplaceKnown(s.URL, "")
	if raw == "" {
		return fmt.Errorf("store redis: a URL is required (redis://host:port/db)")
	}
	opts, err := goredis.ParseURL(raw)
	if err != nil {
		// The URL may hold a password: say what is wrong, not the URL.
		return fmt.Errorf("store redis: the URL cannot be parsed: %v", redactError(err, raw))
	}
	timeout := time.Duration(s.Timeout)
	opts.DialTimeout = timeout
	opts.ReadTimeout = timeout
	opts.WriteTimeout = timeout
	opts.PoolTimeout = timeout
	// Never send a write twice: a script retried after a timeout could be
	// applied twice.
	opts.MaxRetries = -1
	wire := &wireCounter{}
	opts.Dialer = wire.dialer(timeout, opts.TLSConfig)
	s.poolKey = fmt.Sprintf("%s|%s", raw, timeout)
	val, _, err := clients.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		return newRedisClient(goredis.NewClient(opts), wire), nil
	})
	if err != nil {
		return err
	}
	s.pooled = val.(*redisClient)
	s.client, s.wire = s.pooled.UniversalClient, s.pooled.wire
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
// prefix, "redis:<host:port> <prefix>", without the URL's credentials.
func (s *Store) Describe() string {
	if u, err := url.Parse(caddy.NewReplacer().ReplaceKnown(s.URL, "")); err == nil {
		return "redis:" + u.Host + " " + s.KeyPrefix
	}
	return "redis"
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	store redis <url> {
//		key_prefix        <prefix>
//		timeout           <duration>
//		max_live_sessions <n>
//		allow_eviction
//	}
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store type
	if !d.NextArg() {
		return d.Errf("store redis: a URL is required (redis://host:port/db)")
	}
	s.URL = d.Val()
	if d.NextArg() {
		return d.ArgErr()
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
			return d.Errf("store redis: unrecognized subdirective %q", sub)
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
