package ownidsessions

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
)

// The Redis store through a real Caddy; its own tests are in store/redis.

func redisSites(url string) string {
	site := func(port int) string {
		return fmt.Sprintf(`
http://localhost:%d {
	ownid_sessions {
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store redis %s {
			timeout 500ms
		}
		max_sessions 2
	}
}`, port, url)
	}
	return `
{
` + testGlobals + `
	grace_period 1ns
}` + site(9080) + site(9081)
}

// at sends one request to the given port.
func at(t *testing.T, tc *caddytest.Tester, port int, rq request) reply {
	t.Helper()
	rq.unchecked = true
	old := base
	defer func() { base = old }()
	base = fmt.Sprintf("http://localhost:%d", port)
	return call(t, tc, rq)
}

// TestRedisTwoInstances: two servers on separate ports, one Redis: what one
// writes the other reads; If-Match and max_sessions hold across them.
func TestRedisTwoInstances(t *testing.T) {
	url := redistest.SharedURL(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(redisSites(url), "caddyfile")
	tok := tokenFor(t, fmt.Sprint("two-", time.Now().UnixNano()))
	r := at(t, tc, 9080, request{method: "POST", path: "/r/accounts/sessions", token: tok, body: `{"payload":{"from":"a"}}`})
	if r.status != 201 {
		t.Fatalf("create on A: %d %s", r.status, r.body)
	}
	var s sessionOut
	r.json(t, &s)
	etag := r.header.Get("ETag")
	item := "/r/accounts/sessions/" + s.ID
	if r := at(t, tc, 9081, request{method: "GET", path: item, token: tok}); r.status != 200 || !bytes.Contains(r.body, []byte(`"from":"a"`)) || r.header.Get("ETag") != etag {
		t.Fatalf("read on B: %d %s", r.status, r.body)
	}
	if r := at(t, tc, 9081, request{method: "PUT", path: item, token: tok, body: `{"payload":{"from":"b"}}`, header: map[string]string{"If-Match": etag}}); r.status != 200 {
		t.Fatalf("update on B: %d %s", r.status, r.body)
	}
	if r := at(t, tc, 9080, request{method: "PUT", path: item, token: tok, body: `{"payload":{"from":"a again"}}`, header: map[string]string{"If-Match": etag}}); r.status != 412 {
		t.Fatalf("stale If-Match on A: %d %s", r.status, r.body)
	}
	if r := at(t, tc, 9080, request{method: "POST", path: "/r/accounts/sessions", token: tok, body: `{"payload":{}}`}); r.status != 201 {
		t.Fatalf("second session on A: %d", r.status)
	}
	if r := at(t, tc, 9081, request{method: "POST", path: "/r/accounts/sessions", token: tok, body: `{"payload":{}}`}); r.status != 429 {
		t.Fatalf("third session on B (max_sessions 2 across both): %d", r.status)
	}
	var list []sessionOut
	at(t, tc, 9081, request{method: "GET", path: "/r/accounts/sessions", token: tok}).json(t, &list)
	if len(list) != 2 || list[1].ID != s.ID { // the most recently active first
		t.Fatalf("list on B: %+v", list)
	}
	if r := at(t, tc, 9081, request{method: "DELETE", path: item, token: tok}); r.status != 204 {
		t.Fatalf("delete on B: %d", r.status)
	}
	if r := at(t, tc, 9080, request{method: "GET", path: item, token: tok}); r.status != 404 {
		t.Fatalf("read on A after delete on B: %d", r.status)
	}
}

// TestRedisOutage: Redis killed mid-run: 503 (bounded, no hang), nothing
// half written; restarted: correct answers again, without restarting
// Caddy, and every acknowledged write is there.
func TestRedisOutage(t *testing.T) {
	srv := redistest.Start(t, true)
	tc := caddytest.NewTester(t)
	tc.InitServer(redisSites(srv.URL()), "caddyfile")
	tok := tokenFor(t, "outage")
	r := at(t, tc, 9080, request{method: "POST", path: "/o/accounts/sessions", token: tok, body: `{"payload":{"n":1}}`})
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var s sessionOut
	r.json(t, &s)
	item := "/o/accounts/sessions/" + s.ID
	acked := at(t, tc, 9080, request{method: "PUT", path: item, token: tok, body: `{"payload":{"n":2}}`})
	if acked.status != 200 {
		t.Fatalf("acknowledged write: %d", acked.status)
	}

	srv.Kill()
	for _, rq := range []request{
		{method: "GET", path: item, token: tok},
		{method: "PUT", path: item, token: tok, body: `{"payload":{"n":3}}`},
		{method: "POST", path: "/o/accounts/sessions", token: tok, body: `{"payload":{}}`},
		{method: "GET", path: "/o/accounts/sessions", token: tok},
	} {
		start := time.Now()
		r := at(t, tc, 9081, rq)
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("%s while Redis is down: %d %s", rq.method, r.status, r.body)
		}
		if p := r.problem(t); p.Type != kindStoreUnavailable.typeURI() {
			t.Errorf("type %s", p.Type)
		}
		t.Logf("%s answered 503 in %s while Redis was down", rq.method, time.Since(start))
	}

	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = at(t, tc, 9080, request{method: "GET", path: item, token: tok})
		if r.status == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"n":2`)) || r.header.Get("ETag") != acked.header.Get("ETag") {
		t.Fatalf("after Redis came back: %d %s etag %s (want the acknowledged n=2, etag %s)", r.status, r.body, r.header.Get("ETag"), acked.header.Get("ETag"))
	}
	if r := at(t, tc, 9081, request{method: "PUT", path: item, token: tok, body: `{"payload":{"n":3}}`}); r.status != 200 {
		t.Fatalf("write after recovery: %d", r.status)
	}
}
