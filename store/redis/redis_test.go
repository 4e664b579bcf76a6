package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
	"github.com/ownid-sessions/caddy-ownid-sessions/store/storetest"
)

// newTestContext is a Caddy context for provisioning a store; it is
// cancelled when the test ends.
func newTestContext(t testing.TB) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx
}

func newTestStore(t *testing.T, url string, prefix string) *Store {
	t.Helper()
	ctx := newTestContext(t)
	s := &Store{URL: url, KeyPrefix: prefix, Timeout: 0}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return s
}

func TestStoreContract(t *testing.T) {
	url := redistest.SharedURL(t)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++
		return newTestStore(t, url, fmt.Sprintf("ownid_test:%d:%d:", time.Now().UnixNano(), n))
	})
}

func TestStoreIndexStaysBounded(t *testing.T) {
	url := redistest.SharedURL(t)
	st := newTestStore(t, url, fmt.Sprintf("ownid_bounded:%d:", time.Now().UnixNano()))
	ctx := context.Background()
	o := store.Owner{Subject: "churn"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	// 200 short sessions over time: expired and deleted ids leave the index.
	for i := 0; i < 200; i++ {
		at := now.Add(time.Duration(i) * time.Minute)
		s, err := st.Create(ctx, o, store.Session{ID: store.NewID(), Created: at, LastActive: at, Timeout: 30 * time.Second}, 5, nil, at)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			st.Delete(ctx, o, s.ID, nil, at)
		}
	}
	_, index := st.ownerKeys(o)
	if n := st.client.ZCard(ctx, index).Val(); n > 5 {
		t.Fatalf("the index holds %d ids after churn; it must not grow", n)
	}
}

func TestStoreGlobalCap(t *testing.T) {
	url := redistest.SharedURL(t)
	st := newTestStore(t, url, fmt.Sprintf("ownid_cap:%d:", time.Now().UnixNano()))
	st.MaxLiveSessions = 2
	ctx := context.Background()
	now := time.Now()
	for i := 0; i < 2; i++ {
		if _, err := st.Create(ctx, store.Owner{Subject: fmt.Sprint("cap-", i)}, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 5, nil, now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create(ctx, store.Owner{Subject: "cap-x"}, store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}, 5, nil, now); err == nil || !strings.Contains(err.Error(), "maximum") {
		t.Fatalf("create beyond the cap: %v", err)
	}
}

// BenchmarkStore: each operation on Redis (a throwaway local server,
// or REDIS_URL).
func BenchmarkStore(b *testing.B) {
	url := redistest.SharedURL(b)
	storetest.Benchmark(b, func(b *testing.B) store.Store {
		ctx := newTestContext(b)
		rs := &Store{URL: url, KeyPrefix: fmt.Sprintf("ownid_bench:%d:", time.Now().UnixNano())}
		if err := rs.Provision(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rs.Cleanup() })
		return rs
	})
}

// TestDescribe: the admin endpoint's description names the server and
// the prefix, never the URL's credentials.
func TestDescribe(t *testing.T) {
	t.Setenv("OWNID_TEST_REDIS_PASSWORD", "s3cret")
	for url, want := range map[string]string{
		"redis://user:s3cret@redis.internal:6379/0":                      "redis:redis.internal:6379 p:",
		"redis://:{env.OWNID_TEST_REDIS_PASSWORD}@redis.internal:6380/0": "redis:redis.internal:6380 p:",
		"redis://[::1:6379/0":                                            "redis",
	} {
		s := &Store{URL: url, KeyPrefix: "p:"}
		if got := s.Describe(); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("%s described as %q, want %q", url, got, want)
		}
	}
}

// TestProvisionErrors: a config that cannot work fails at load, saying
// why, without the URL's password.
func TestProvisionErrors(t *testing.T) {
	for _, tt := range []struct {
		s    Store
		want string
	}{
		{Store{}, "store redis: a URL is required"},
		{Store{URL: "redis://x", Timeout: -1}, "must be positive"},
		{Store{URL: "redis://x", MaxLiveSessions: -1}, "must be positive"},
		{Store{URL: "redis://user:s3cret@host:port/0"}, "store redis: the URL cannot be parsed"},
	} {
		err := tt.s.Provision(newTestContext(t))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%+v: error %v, want it to say %q without the password", tt.s, err, tt.want)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	var s Store
	err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`redis redis://:{env.REDIS_PASSWORD}@redis.internal:6379/0 {
		key_prefix        myapp:
		timeout           1s
		max_live_sessions 5000
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.URL != "redis://:{env.REDIS_PASSWORD}@redis.internal:6379/0" || s.KeyPrefix != "myapp:" || time.Duration(s.Timeout) != time.Second || s.MaxLiveSessions != 5000 {
		t.Fatalf("parsed %+v", s)
	}
	for input, want := range map[string]string{
		"redis":                                      "store redis: a URL is required",
		"redis redis://x y":                          "wrong argument count",
		"redis redis://x {\n pool 1\n}":              `store redis: unrecognized subdirective "pool"`,
		"redis redis://x {\n timeout soon\n}":        `store redis timeout: invalid duration "soon"`,
		"redis redis://x {\n max_live_sessions 0\n}": "store redis max_live_sessions: want a positive integer",
		"redis redis://x {\n key_prefix\n}":          "wrong argument count",
	} {
		var s Store
		if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", input, err, want)
		}
	}
}
