package ownidsessions

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
)

// Redis Cluster and Sentinel through a real Caddy: the session API on each
// topology, then its master killed (SIGKILL) under creates. During the
// switch the module answers 503 (store-unavailable or
// store-outcome-unknown), never anything else; once a replica is promoted
// and the old master is back as a replica, it serves again without a
// restart of Caddy; with wait_replicas 1, every create answered 201 is
// there afterwards.

func TestClusterThroughCaddy(t *testing.T) {
	c := redistest.StartClusterWith(t, redistest.ClusterConfig{Password: "cluster-secret-0123"})
	t.Setenv("OWNID_TEST_REDIS_PASSWORD", "cluster-secret-0123")
	storeLine := fmt.Sprintf("store redis cluster %s {\n\t\t\tpassword {env.OWNID_TEST_REDIS_PASSWORD}\n\t\t\twait_replicas 1 1s\n\t\t\ttimeout 1s\n\t\t}",
		strings.Join(c.Addrs()[:3], " "))
	scaleOut(t, storeLine, func(sessionID string) (killed string) {
		// The master of the slot that holds the account's keys.
		ctx := context.Background()
		for _, m := range c.Masters() {
			cl := goredis.NewClient(&goredis.Options{Addr: m, Password: "cluster-secret-0123"})
			keys, _ := cl.Keys(ctx, "*:s:"+sessionID).Result()
			cl.Close()
			if len(keys) == 1 {
				c.Kill(m)
				return m
			}
		}
		t.Fatal("no master holds the session")
		return ""
	}, func(killed string) {
		c.WaitOK()
		c.Restart(killed)
		c.WaitOK()
		c.WaitReplicated()
	})
}

func TestSentinelThroughCaddy(t *testing.T) {
	s := redistest.StartSentinelWith(t, redistest.SentinelConfig{Password: "data-secret-0123", SentinelPassword: "sentinel-secret-0123"})
	t.Setenv("OWNID_TEST_REDIS_PASSWORD", "data-secret-0123")
	storeLine := fmt.Sprintf("store redis sentinel %s %s {\n\t\t\tpassword {env.OWNID_TEST_REDIS_PASSWORD}\n\t\t\tsentinel_password sentinel-secret-0123\n\t\t\twait_replicas 1 1s\n\t\t\ttimeout 1s\n\t\t}",
		s.MasterName(), strings.Join(s.SentinelAddrs(), " "))
	scaleOut(t, storeLine, func(string) string { return s.KillMaster() }, func(killed string) {
		s.WaitPromoted(killed)
		s.Rejoin(killed)
	})
}

// scaleOut runs the API on storeLine's Redis through Caddy, then kills its
// master (kill, given a session id of the account, returns what it killed)
// under creates, and recovers it.
func scaleOut(t *testing.T, storeLine string, kill func(sessionID string) string, heal func(killed string)) {
	tc := caddytest.NewTester(t)
	tc.InitServer(storeSite(storeLine, "max_sessions 100000"), "caddyfile")
	tok := tokenFor(t, "scale-out")

	// The API, shortly: create (keyed), get, conditional update, pages,
	// revoke all.
	key := map[string]string{"Idempotency-Key": `"first"`}
	r := call(t, tc, request{method: "POST", path: "/so/accounts/sessions", token: tok, body: `{"payload":{"n":1}}`, header: key})
	var s sessionOut
	r.json(t, &s)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if again := call(t, tc, request{method: "POST", path: "/so/accounts/sessions", token: tok, body: `{"payload":{"n":1}}`, header: key}); again.header.Get("ETag") != r.header.Get("ETag") {
		t.Fatalf("keyed retry: %d %s", again.status, again.body)
	}
	item := "/so/accounts/sessions/" + s.ID
	if g := call(t, tc, request{method: "GET", path: item, token: tok}); g.status != 200 {
		t.Fatalf("get: %d", g.status)
	}
	up := call(t, tc, request{method: "PUT", path: item, token: tok, body: `{"payload":{"n":2}}`, header: map[string]string{"If-Match": r.header.Get("ETag")}})
	if up.status != 200 {
		t.Fatalf("put: %d %s", up.status, up.body)
	}
	if stale := call(t, tc, request{method: "PUT", path: item, token: tok, body: `{}`, header: map[string]string{"If-Match": r.header.Get("ETag")}}); stale.status != 412 {
		t.Fatalf("stale If-Match: %d", stale.status)
	}
	for range 2 {
		create(t, tc, "/so", tok, `{"payload":{}}`)
	}
	if p := call(t, tc, request{method: "GET", path: "/so/accounts/sessions?limit=2", token: tok}); p.status != 200 || p.header.Get("Link") == "" {
		t.Fatalf("first page: %d %q", p.status, p.header.Get("Link"))
	}
	d := call(t, tc, request{method: "DELETE", path: "/so/accounts/sessions?except=" + s.ID, token: tok})
	if d.status != 204 || d.header.Get("Sessions-Deleted") != "2" {
		t.Fatalf("revoke all but one: %d %q", d.status, d.header.Get("Sessions-Deleted"))
	}

	// Failover under creates.
	var (
		mu       sync.Mutex
		acked    []string
		statuses = map[int]int{}
		stop     atomic.Bool
		wg       sync.WaitGroup
		n        atomic.Int64
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000 && !stop.Load(); i++ {
				req, _ := http.NewRequest("POST", base+"/so/accounts/sessions", strings.NewReader(`{"payload":{}}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprintf(`"w-%d"`, n.Add(1)))
				resp, err := tc.Client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode == 201 {
					var got sessionOut
					if err := json.Unmarshal(body, &got); err == nil {
						acked = append(acked, got.ID)
					}
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	killed := kill(s.ID)
	heal(killed)
	// Serving again, the same Caddy: a create succeeds within a bound.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		before := statuses[201]
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		after := statuses[201]
		mu.Unlock()
		if after > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no create succeeded within 20 s of the recovery: %v", statuses)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("answers during the failover: %v", statuses)
	for status := range statuses {
		if status != 201 && status != 503 {
			t.Errorf("answered %d during the failover", status)
		}
	}
	if statuses[503] == 0 {
		t.Log("no 503 was seen: the switch fell between two requests")
	}
	var list []sessionOut
	call(t, tc, request{method: "GET", path: "/so/accounts/sessions", token: tok}).json(t, &list)
	have := map[string]bool{}
	for _, x := range list {
		have[x.ID] = true
	}
	lost := 0
	for _, id := range acked {
		if !have[id] {
			lost++
		}
	}
	if lost > 0 || !have[s.ID] {
		t.Fatalf("%d of %d acknowledged creates are missing after the failover (first session there: %v)", lost, len(acked), have[s.ID])
	}
}
