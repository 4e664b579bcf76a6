package redis

import (
	"context"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// closeQuiet is how long a client no config holds any more must go unused
// before it is closed: requests that a reload left in flight (an old
// server finishing its requests, a slow body still arriving) finish on the
// client they started with.
var closeQuiet = time.Minute

// redisClient is a client shared by the configs that name the same
// connection settings (a caddy.UsagePool value), with the count of the
// operations running on it. The counts are atomics: every operation of
// every request touches them.
type redisClient struct {
	goredis.UniversalClient

	inflight atomic.Int64
	lastUse  atomic.Int64 // unix ns of the last operation's end
}

func newRedisClient(c goredis.UniversalClient) *redisClient {
	return &redisClient{UniversalClient: c}
}

// hold marks an operation running until release.
func (c *redisClient) hold() { c.inflight.Add(1) }

func (c *redisClient) release() {
	c.lastUse.Store(time.Now().UnixNano())
	c.inflight.Add(-1)
}

// Destruct is called when no config holds the client any more (a reload
// changed the store's settings). It does not close the client under the
// old config's requests: it closes it once no operation has run on it for
// closeQuiet.
func (c *redisClient) Destruct() error {
	c.lastUse.Store(time.Now().UnixNano())
	go func() {
		for {
			time.Sleep(closeQuiet)
			idle := time.Since(time.Unix(0, c.lastUse.Load())) >= closeQuiet
			if c.inflight.Load() == 0 && idle {
				_ = c.Close()
				return
			}
		}
	}()
	return nil
}

// op bounds one operation by the store's timeout and holds the client for
// it; cancel ends both.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	if s.pooled == nil {
		return ctx, cancel
	}
	c := s.pooled
	c.hold()
	return ctx, func() { cancel(); c.release() }
}
