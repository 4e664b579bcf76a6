package ownidsessions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
)

// Honest outcomes and Idempotency-Key through a real Caddy.

func TestIdempotencyKey(t *testing.T) {
	for name, storeLine := range bothStores(t, "idem") {
		t.Run(name, func(t *testing.T) {
			tc := caddytest.NewTester(t)
			tc.InitServer(storeSite(storeLine, ""), "caddyfile")
			tok := tokenFor(t, "idem-"+name)
			post := func(key, body string) reply {
				return call(t, tc, request{method: "POST", path: "/i/accounts/sessions", token: tok, body: body,
					header: map[string]string{"Idempotency-Key": key}})
			}
			first := post(`"order-42"`, `{"payload":{"n":1}}`)
			var s1 sessionOut
			first.json(t, &s1)
			if first.status != 201 {
				t.Fatalf("first: %d %s", first.status, first.body)
			}
			again := post(`"order-42"`, `{"payload":{"n":1}}`)
			var s2 sessionOut
			again.json(t, &s2)
			if again.status != 201 || s2.ID != s1.ID || again.header.Get("ETag") != first.header.Get("ETag") || again.header.Get("Location") != first.header.Get("Location") {
				t.Fatalf("retry: %d %s %v, want the first answer %s", again.status, again.body, again.header, first.body)
			}
			r := post(`"order-42"`, `{"payload":{"n":2}}`)
			if r.status != 422 || r.problem(t).Type != problemTypeBase+"idempotency-key-reused" {
				t.Fatalf("another body under the key: %d %s", r.status, r.body)
			}
			for _, bad := range []string{`""`, `"unterminated`, `"` + strings.Repeat("k", 256) + `"`, "two words", `"a"b`} {
				if r := post(bad, `{"payload":{}}`); r.status != 400 {
					t.Errorf("Idempotency-Key %s: %d", bad, r.status)
				}
			}
			// Another account's same key is its own.
			other := call(t, tc, request{method: "POST", path: "/i/accounts/sessions", token: tokenFor(t, "idem-other-"+name), body: `{"payload":{"n":1}}`,
				header: map[string]string{"Idempotency-Key": `"order-42"`}})
			var s3 sessionOut
			other.json(t, &s3)
			if other.status != 201 || s3.ID == s1.ID {
				t.Fatalf("another account: %d %s", other.status, other.body)
			}
			if bare := post("order-43", `{"payload":{}}`); bare.status != 201 {
				t.Fatalf("a bare token key: %d", bare.status)
			}
			var list []sessionOut
			call(t, tc, request{method: "GET", path: "/i/accounts/sessions", token: tok}).json(t, &list)
			if len(list) != 2 {
				t.Fatalf("%d sessions, want 2 (order-42 once, order-43)", len(list))
			}
		})
	}
}

// TestSleepingRedisThroughCaddy: Redis stops answering after a POST and a
// PUT were sent (DEBUG SLEEP). Both are answered 503
// store-outcome-unknown, never "nothing was written"; when Redis wakes and
// runs them, the POST sent again with its Idempotency-Key gets the session
// the first attempt made: one session, not two.
func TestSleepingRedisThroughCaddy(t *testing.T) {
	srv := redistest.Start(t, false)
	tc := caddytest.NewTester(t)
	tc.InitServer(storeSite("store redis "+srv.URL()+" {\n\t\t\ttimeout 300ms\n\t\t}", ""), "caddyfile")
	tok := tokenFor(t, "sleeper")
	s, _ := create(t, tc, "/zz", tok, `{"payload":{"v":1}}`)
	item := "/zz/accounts/sessions/" + s.ID
	if r := call(t, tc, request{method: "PUT", path: item, token: tok, body: `{"payload":{"v":2}}`}); r.status != 200 {
		t.Fatalf("put: %d", r.status)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0")})
	defer admin.Close()
	slept := make(chan error, 1)
	go func() { slept <- admin.Do(context.Background(), "DEBUG", "SLEEP", "3").Err() }()
	time.Sleep(300 * time.Millisecond) // DEBUG SLEEP has begun

	key := map[string]string{"Idempotency-Key": `"login-7"`}
	for _, rq := range []request{
		{method: "POST", path: "/zz/accounts/sessions", token: tok, body: `{"payload":{"v":"new"}}`, header: key},
		{method: "PUT", path: item, token: tok, body: `{"payload":{"v":3}}`},
	} {
		r := call(t, tc, rq)
		if r.status != 503 || r.problem(t).Type != problemTypeBase+"store-outcome-unknown" {
			t.Fatalf("%s while Redis sleeps: %d %s", rq.method, r.status, r.body)
		}
	}
	if err := <-slept; err != nil {
		t.Fatal(err)
	}
	r := call(t, tc, request{method: "POST", path: "/zz/accounts/sessions", token: tok, body: `{"payload":{"v":"new"}}`, header: key})
	if r.status != 201 {
		t.Fatalf("the retried POST: %d %s", r.status, r.body)
	}
	var list []sessionOut
	call(t, tc, request{method: "GET", path: "/zz/accounts/sessions", token: tok}).json(t, &list)
	if len(list) != 2 {
		t.Fatalf("%d sessions after the retry, want 2 (the first, and the sleeping POST's once)", len(list))
	}
	// The PUT may or may not have run (it was sent on a connection whose
	// handshake Redis had not answered): either state is what "may have
	// been applied" allows, nothing else.
	got := call(t, tc, request{method: "GET", path: item, token: tok})
	if got.status != 200 || !(strings.Contains(string(got.body), `"v":3`) || strings.Contains(string(got.body), `"v":2`)) {
		t.Fatalf("the session after the sleep: %d %s", got.status, got.body)
	}
}
