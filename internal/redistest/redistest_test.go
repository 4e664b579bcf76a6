package redistest

import (
	"context"
	"testing"

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
