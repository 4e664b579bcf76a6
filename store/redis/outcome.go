package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// failure says what a Redis error means for the client, honestly: whether
// nothing was written (store-unavailable), the store is full (store-full,
// nothing written) or a write may have been applied (store-outcome-unknown).
// maybeSent says whether a write's command may have reached Redis (see
// wireCounter); false for reads.
func failure(err error, maybeSent bool) error {
	var reply goredis.Error
	switch {
	case errors.As(err, &reply):
		// Redis answered with an error: the script was refused before it
		// ran (OOM, READONLY, LOADING, MASTERDOWN, CLUSTERDOWN, ...). The
		// scripts raise no errors of their own once running.
		if strings.HasPrefix(reply.Error(), "OOM ") {
			return fmt.Errorf("redis: %w (%v)", store.StoreFullError{RetryAfter: time.Minute}, err)
		}
		return fmt.Errorf("redis: refused: %w", err)
	case !maybeSent, notSent(err):
		return fmt.Errorf("redis: %w", err)
	}
	// The command may have been sent, and no answer came: Redis may run it
	// later, or has already.
	return fmt.Errorf("redis: %w: %w", store.ErrOutcomeUnknown, err)
}

// notSent says whether err means the command never left: no connection
// could be had (pool exhausted or timed out, client closed, dial failed).
func notSent(err error) bool {
	if errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolExhausted) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// wireCounter counts the bytes a client has written to Redis, on every
// connection it dials. A write that fails while the count stayed the same
// was never sent by anyone, so certainly not applied (Redis down, no
// connection to be had): store-unavailable. Any other failure of a write may
// have been applied: store-outcome-unknown. Concurrent writes on other
// connections only make the answer more cautious, never wrong.
type wireCounter struct{ written atomic.Uint64 }

// dialer is a go-redis Dialer that dials as go-redis does (TCP, then TLS
// when configured) and counts what is written.
func (w *wireCounter) dialer(timeout time.Duration, tlsConfig *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tlsConfig != nil {
			conn = tls.Client(conn, tlsConfig)
		}
		return countingConn{conn, &w.written}, nil
	}
}

// mark is the count before an operation; sent says whether anything was
// written since.
func (w *wireCounter) mark() uint64 {
	if w == nil {
		return 0
	}
	return w.written.Load()
}

func (w *wireCounter) sent(mark uint64) bool { return w == nil || w.written.Load() != mark }

type countingConn struct {
	net.Conn
	written *atomic.Uint64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(uint64(n))
	return n, err
}

// ready checks the Redis the store will use, once, when the config loads:
// its eviction policy, and the scripts loaded so that every write is one
// EVALSHA. A Redis that cannot be reached is logged, not refused.
func (s *Store) ready(ctx context.Context, logger *zap.Logger) error {
	if err := s.checkEviction(ctx, logger); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	defer cancel()
	load := func(ctx context.Context, c goredis.UniversalClient) error {
		for _, script := range []*goredis.Script{createScript, updateScript, deleteScript, deleteAllScript} {
			if err := script.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if cluster, ok := s.client.(*goredis.ClusterClient); ok {
		err = cluster.ForEachShard(ctx, func(ctx context.Context, c *goredis.Client) error { return load(ctx, c) })
	} else {
		err = load(ctx, s.client)
	}
	if err != nil {
		// Each script is sent whole the first time Redis does not know it.
		logger.Debug("redis scripts not preloaded", zap.Error(redactedError{err}))
	}
	return nil
}

// checkEviction reads Redis's maxmemory-policy (INFO memory, which managed
// services allow where CONFIG is renamed) and refuses a policy that evicts
// keys unless allow_eviction is set: an evicted session or index loses
// sessions and breaks the per-account count. A Redis that cannot be reached
// now is logged, not refused: Caddy must start while Redis is down.
func (s *Store) checkEviction(ctx context.Context, logger *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	defer cancel()
	var policies []string
	read := func(ctx context.Context, c goredis.UniversalClient) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
				policies = append(policies, v)
			}
		}
		return nil
	}
	var err error
	if cluster, ok := s.client.(*goredis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return read(ctx, c) })
	} else {
		err = read(ctx, s.client)
	}
	if err != nil {
		logger.Warn("redis cannot be reached to check its maxmemory-policy; it is checked again at the next config load",
			zap.String("store", s.Describe()), zap.Error(redactedError{err}))
		return nil
	}
	for _, p := range policies {
		if p == "noeviction" {
			continue
		}
		if s.AllowEviction {
			logger.Warn("redis evicts keys (allow_eviction): sessions may vanish before they expire",
				zap.String("maxmemory_policy", p))
			return nil
		}
		return fmt.Errorf("store redis: Redis's maxmemory-policy is %s, which evicts keys under memory pressure and would lose sessions and break the per-account index; set maxmemory-policy noeviction (then a full Redis answers 503 store-full and writes nothing), or allow_eviction to use Redis as a cache", p)
	}
	return nil
}

// redactedError logs an error of the client, whose messages name addresses
// but never passwords.
type redactedError struct{ error }
