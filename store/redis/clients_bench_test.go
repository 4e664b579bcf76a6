package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// BenchmarkClients runs the update script (a PUT's one round trip) through
// go-redis, as the store does, and through rueidis (auto-pipelining), side
// by side against one local Redis, from 16 concurrent callers each with its
// own session, as concurrent requests are. Same script, same keys, same
// arguments; the figure is what the client path costs.
func BenchmarkClients(b *testing.B) {
	url := redistest.SharedURL(b)
	st := &Store{URL: url, KeyPrefix: fmt.Sprintf("bench-clients:%d:", time.Now().UnixNano())}
	if err := st.Provision(newTestContext(b)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Cleanup() })
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	payload := json.RawMessage(`{"preferences":{"theme":"dark","resolution":"wide"}}`)
	type target struct {
		owner store.Owner
		id    string
	}
	const callers = 16
	targets := make([]target, callers)
	for i := range targets {
		o := store.Owner{App: "/bench", Subject: fmt.Sprint("client-", i)}
		s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour, Payload: payload}, 10, nil, now)
		if err != nil {
			b.Fatal(err)
		}
		targets[i] = target{o, s.ID}
	}
	parallel := func(b *testing.B, update func(t target) error) {
		var next atomic.Int64
		b.SetParallelism((callers + 1) / 2) // × GOMAXPROCS (2) callers
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			t := targets[int(next.Add(1)-1)%callers]
			for pb.Next() {
				if err := update(t); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("go-redis", func(b *testing.B) {
		parallel(b, func(t target) error {
			_, err := st.Update(ctx, t.owner, t.id, payload, nil, now)
			return err
		})
	})
	b.Run("rueidis", func(b *testing.B) {
		client, err := rueidis.NewClient(rueidis.ClientOption{
			InitAddress:  []string{strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")},
			DisableCache: true,
			DisableRetry: true,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		script := rueidis.NewLuaScript("#!lua\n" + writeBody)
		parallel(b, func(t target) error {
			prefix, index := st.ownerKeys(t.owner)
			ctx, cancel := context.WithTimeout(ctx, time.Duration(st.Timeout))
			defer cancel()
			res, err := script.Exec(ctx, client, []string{prefix + t.id, index},
				[]string{strconv.FormatInt(ms(now), 10), t.id, "update", string(payload), "1", "0", prefix + t.id, store.NewTag()}).ToArray()
			if err != nil {
				return err
			}
			if s, _ := res[0].ToString(); s != "ok" {
				return fmt.Errorf("update answered %s", s)
			}
			_, err = readRueidis(t.id, res, now)
			return err
		})
	})
}

// readRueidis turns the update script's answer into a Session, as the
// store does with go-redis's.
func readRueidis(id string, res []rueidis.RedisMessage, now time.Time) (store.Session, error) {
	f := make([]any, 0, len(sessionFields))
	for _, i := range []int{1, -1, 3, 4, 2, 5, 6} {
		if i < 0 {
			f = append(f, strconv.FormatInt(ms(now), 10))
			continue
		}
		v, err := res[i].ToString()
		if err != nil {
			return store.Session{}, err
		}
		f = append(f, v)
	}
	s, ok := readSession(id, f, now)
	if !ok {
		return s, fmt.Errorf("not found")
	}
	return s, nil
}
