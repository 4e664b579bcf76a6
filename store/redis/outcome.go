package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// failure says what a Redis error means for the client, honestly: a write
// that may have been applied (runWrite marked it store.ErrOutcomeUnknown)
// stays so; a full Redis (OOM: the script was refused as a whole) is
// store-full; any other error wrote nothing (store-unavailable).
func failure(err error) error {
	var reply goredis.Error
	if !errors.Is(err, store.ErrOutcomeUnknown) && errors.As(err, &reply) && strings.HasPrefix(reply.Error(), "OOM ") {
		return fmt.Errorf("redis: %w (%v)", store.StoreFullError{RetryAfter: time.Minute}, err)
	}
	return fmt.Errorf("redis: %w", err)
}

// ready checks the Redis the store will use, once, when the config loads:
// its eviction policy, and the scripts loaded so that every write is one
// EVALSHA. A Redis that cannot be reached is logged, not refused.
func (s *Store) ready(ctx context.Context, logger *zap.Logger) error {
	if reached, err := s.checkEviction(ctx, logger); err != nil || !reached {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	defer cancel()
	load := func(ctx context.Context, c goredis.UniversalClient) error {
		for _, script := range []*goredis.Script{createScript, updateScript, deleteScript, deleteAllScript, listScript} {
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
func (s *Store) checkEviction(ctx context.Context, logger *zap.Logger) (reached bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	defer cancel()
	var (
		mu       sync.Mutex // ForEachMaster calls read concurrently
		policies []string
	)
	read := func(ctx context.Context, c goredis.UniversalClient) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "maxmemory_policy:"); ok {
				mu.Lock()
				policies = append(policies, v)
				mu.Unlock()
			}
		}
		return nil
	}
	if cluster, ok := s.client.(*goredis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return read(ctx, c) })
	} else {
		err = read(ctx, s.client)
	}
	if err != nil {
		logger.Warn("redis cannot be reached to check its maxmemory-policy; it is checked again at the next config load",
			zap.String("store", s.Describe()), zap.Error(redactedError{err}))
		return false, nil
	}
	for _, p := range policies {
		if p == "noeviction" {
			continue
		}
		if s.AllowEviction {
			logger.Warn("redis evicts keys (allow_eviction): sessions may vanish before they expire",
				zap.String("maxmemory_policy", p))
			return true, nil
		}
		return true, fmt.Errorf("store redis: Redis's maxmemory-policy is %s, which evicts keys under memory pressure and would lose sessions and break the per-account index; set maxmemory-policy noeviction (then a full Redis answers 503 store-full and writes nothing), or allow_eviction to use Redis as a cache", p)
	}
	return true, nil
}

// redactedError logs an error of the client, whose messages name addresses
// but never passwords.
type redactedError struct{ error }
