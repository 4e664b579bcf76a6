package redis

import (
	"context"
	"sync"
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
// operations running on it.
type redisClient struct {
	goredis.UniversalClient

	mu       sync.Mutex
	inflight int
	lastUse  time.Time
	closing  bool
}

func newRedisClient(c goredis.UniversalClient) *redisClient {
	return &redisClient{UniversalClient: c}
}

// hold marks an operation running until release is called.
func (c *redisClient) hold() (release func()) {
	c.mu.Lock()
	c.inflight++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.inflight--
		c.lastUse = time.Now()
		c.mu.Unlock()
	}
}

// Destruct is called when no config holds the client any more (a reload
// changed the store's settings). It does not close the client under the
// old config's requests: it closes it once no operation has run on it for
// closeQuiet.
func (c *redisClient) Destruct() error {
	c.mu.Lock()
	c.closing = true
	c.lastUse = time.Now()
	c.mu.Unlock()
	go func() {
		for {
			time.Sleep(closeQuiet)
			c.mu.Lock()
			idle := c.inflight == 0 && time.Since(c.lastUse) >= closeQuiet
			c.mu.Unlock()
			if idle {
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
	release := s.pooled.hold()
	return ctx, func() { cancel(); release() }
}
