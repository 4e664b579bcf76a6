package ownidsessions

import (
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
)

// The end-to-end tests of what a client can make the module hold and whom
// a session belongs to: the memory store's byte budget, apps bound to
// tokens, and accounts that are an issuer and a subject together.

// TestByteBudget: the memory store refuses, with 503 and nothing written, a
// create or a growing update that would pass max_bytes; reads and deletes go
// on, and a delete makes room.
func TestByteBudget(t *testing.T) {
	tc := caddytest.NewTester(t)
	// A session below counts 512 + 22 (id) + 6 (sub) + 1008 (payload) +
	// 126 (its size class) = 1674 bytes: two fit in 4 KiB, a third does
	// not.
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory budget-test {
			max_bytes 4KiB
			sweep_interval 15s
		}`), "caddyfile")
	tok := tokenFor(t, "budget")
	body := `{"payload":{"p":"` + strings.Repeat("x", 1000) + `"}}`
	a, createdA := create(t, tc, "", tok, body)
	b, _ := create(t, tc, "", tok, body)

	r := call(t, tc, request{method: "POST", path: "/accounts/sessions", token: tok, body: body})
	if r.status != 503 || r.header.Get("Retry-After") != "15" {
		t.Fatalf("create over the budget: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if p := r.problem(t); p.Type != kindStoreFull.typeURI() {
		t.Errorf("type %s", p.Type)
	}
	var list []sessionOut
	call(t, tc, request{method: "GET", path: "/accounts/sessions", token: tok}).json(t, &list)
	if len(list) != 2 {
		t.Fatalf("a refused create wrote: %d sessions", len(list))
	}

	// Growing a payload past the budget is refused the same way, and the
	// session keeps its payload and ETag.
	grow := `{"payload":{"p":"` + strings.Repeat("y", 3000) + `"}}`
	r = call(t, tc, request{method: "PUT", path: "/accounts/sessions/" + a.ID, token: tok, body: grow})
	if r.status != 503 {
		t.Fatalf("growing update over the budget: %d %s", r.status, r.body)
	}
	r = call(t, tc, request{method: "GET", path: "/accounts/sessions/" + a.ID, token: tok})
	var got sessionOut
	r.json(t, &got)
	if r.status != 200 || r.header.Get("ETag") != createdA.header.Get("ETag") || got.Payload["p"] != strings.Repeat("x", 1000) {
		t.Fatalf("a refused update wrote: %d ETag %s", r.status, r.header.Get("ETag"))
	}
	// A smaller payload always goes through.
	if r := call(t, tc, request{method: "PUT", path: "/accounts/sessions/" + a.ID, token: tok, body: `{"payload":{}}`}); r.status != 200 {
		t.Fatalf("shrinking update: %d %s", r.status, r.body)
	}

	if r := call(t, tc, request{method: "DELETE", path: "/accounts/sessions/" + b.ID, token: tok}); r.status != 204 {
		t.Fatalf("delete while full: %d", r.status)
	}
	create(t, tc, "", tok, body)
	create(t, tc, "", tok, body)
}

// tokenWith is a valid HS256 token for sub with extra claims.
func tokenWith(t *testing.T, sub string, extra jwt.MapClaims) string {
	claims := claimsFor(sub)
	for k, v := range extra {
		claims[k] = v
	}
	return sign(t, "HS256", claims)
}

// TestAppBinding: app_claim and apps decide which apps a token may use; any
// other app is a 404 that stores nothing.
func TestAppBinding(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory app-binding-test
		app_claim app_id`), "caddyfile")

	one := tokenWith(t, "alice", jwt.MapClaims{"app_id": "my-app"})
	many := tokenWith(t, "alice", jwt.MapClaims{"app_id": []any{"other-app", "my-app"}})
	none := tokenFor(t, "alice")
	wrongType := tokenWith(t, "alice", jwt.MapClaims{"app_id": 7})

	s, _ := create(t, tc, "/my-app", one, `{"payload":{}}`)
	if r := call(t, tc, request{method: "GET", path: "/my-app/accounts/sessions/" + s.ID, token: many}); r.status != 200 {
		t.Fatalf("array claim holding the app: %d %s", r.status, r.body)
	}
	create(t, tc, "/other-app", many, `{"payload":{}}`)

	refused := []struct {
		name, method, path, token string
	}{
		{"another app", "POST", "/evil/accounts/sessions", one},
		{"the app nested", "POST", "/x/my-app/accounts/sessions", one},
		{"no app", "POST", "/accounts/sessions", one},
		{"no claim", "POST", "/my-app/accounts/sessions", none},
		{"claim of another type", "POST", "/my-app/accounts/sessions", wrongType},
		{"array without the app", "POST", "/evil/accounts/sessions", many},
		{"read through another app", "GET", "/evil/accounts/sessions/" + s.ID, one},
		{"list without the claim", "GET", "/my-app/accounts/sessions", none},
	}
	for _, c := range refused {
		body := ""
		if c.method == "POST" {
			body = `{"payload":{}}`
		}
		r := call(t, tc, request{method: c.method, path: c.path, token: c.token, body: body})
		if r.status != 404 {
			t.Errorf("%s: %d %s, want 404", c.name, r.status, r.body)
			continue
		}
		if p := r.problem(t); p.Type != kindNotFound.typeURI() {
			t.Errorf("%s: type %s, want not-found (as for a missing session)", c.name, p.Type)
		}
	}
	// Nothing was stored under the refused apps: reconfigured without the
	// binding, the same store shows only what was created above.
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory app-binding-test`), "caddyfile")
	for app, want := range map[string]int{"/evil": 0, "": 0, "/x/my-app": 0, "/my-app": 1, "/other-app": 1} {
		var list []sessionOut
		call(t, tc, request{method: "GET", path: app + "/accounts/sessions", token: none}).json(t, &list)
		if len(list) != want {
			t.Errorf("app %q holds %d sessions, want %d", app, len(list), want)
		}
	}

	// apps: the only apps served, listed with or without the leading "/".
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory app-binding-test
		apps my-app /second`), "caddyfile")
	create(t, tc, "/second", none, `{"payload":{}}`)
	for _, app := range []string{"/third", "", "/my-app/x", "/MY-APP"} {
		r := call(t, tc, request{method: "POST", path: app + "/accounts/sessions", token: none, body: `{"payload":{}}`})
		if r.status != 404 {
			t.Errorf("apps: POST under %q: %d, want 404", app, r.status)
		}
	}
}

// TestAppBindingForward: in forward mode an app the token may not use never
// reaches the backend.
func TestAppBindingForward(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(forwardConfig(be.URL, "off", "app_claim app_id\n\t\tapps my-app other-app"), "caddyfile")
	tok := tokenWith(t, "fwd", jwt.MapClaims{"app_id": "my-app"})
	for _, path := range []string{"/evil/accounts/sessions", "/other-app/accounts/sessions", "/accounts/sessions"} {
		before := be.count()
		r := call(t, tc, request{method: "GET", path: path, token: tok})
		if r.status != 404 || be.count() != before {
			t.Errorf("GET %s: %d, backend saw %d new requests; want 404 and none", path, r.status, be.count()-before)
		}
	}
	before := be.count()
	if r := fwd(t, tc, request{method: "GET", path: "/my-app/accounts/sessions", token: tok}); r.status != 200 || be.count() != before+1 {
		t.Fatalf("bound app: %d, backend saw %d", r.status, be.count()-before)
	}
}

// TestIssuersAreSeparateAccounts: the same sub from two issuers, or from a
// token without iss, is three accounts, in both stores.
func TestIssuersAreSeparateAccounts(t *testing.T) {
	stores := map[string]string{
		"memory": "store memory issuers-test",
		"redis":  "store redis " + redistest.SharedURL(t) + fmt.Sprintf(" {\n\t\t\tkey_prefix issuers-test:%d:\n\t\t}", testNow().UnixNano()),
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			tc := caddytest.NewTester(t)
			tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		`+store), "caddyfile")
			fromA := tokenWith(t, "alice", jwt.MapClaims{"iss": "https://a.example"})
			fromB := tokenWith(t, "alice", jwt.MapClaims{"iss": "https://b.example"})
			noIss := tokenFor(t, "alice")
			s, _ := create(t, tc, "/app", fromB, `{"payload":{"who":"b"}}`)
			for tokName, tok := range map[string]string{"issuer a": fromA, "no issuer": noIss} {
				for _, rq := range []request{
					{method: "GET", path: "/app/accounts/sessions/" + s.ID},
					{method: "PUT", path: "/app/accounts/sessions/" + s.ID, body: `{"payload":{}}`},
					{method: "DELETE", path: "/app/accounts/sessions/" + s.ID},
				} {
					rq.token = tok
					if r := call(t, tc, rq); r.status != 404 {
						t.Errorf("%s: %s: %d, want 404", tokName, rq.method, r.status)
					}
				}
				var list []sessionOut
				call(t, tc, request{method: "GET", path: "/app/accounts/sessions", token: tok}).json(t, &list)
				if len(list) != 0 {
					t.Errorf("%s lists %d of issuer b's sessions", tokName, len(list))
				}
			}
			r := call(t, tc, request{method: "GET", path: "/app/accounts/sessions/" + s.ID, token: fromB})
			var got sessionOut
			r.json(t, &got)
			if r.status != 200 || got.Payload["who"] != "b" {
				t.Fatalf("owner: %d %s", r.status, r.body)
			}
		})
	}
}

// TestStoreFull: beyond max_live_sessions creates get 503 with Retry-After;
// reads, updates and deletes go on, and a delete makes room.
func TestStoreFull(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory full-test {
			max_live_sessions 3
			sweep_interval 20s
		}`), "caddyfile")
	var ids []string
	for i := 0; i < 3; i++ {
		s, _ := create(t, tc, "", tokenFor(t, fmt.Sprint("full-", i)), `{"payload":{}}`)
		ids = append(ids, s.ID)
	}
	other := tokenFor(t, "full-newcomer")
	r := call(t, tc, request{method: "POST", path: "/accounts/sessions", token: other, body: `{"payload":{}}`})
	if r.status != 503 || r.header.Get("Retry-After") != "20" {
		t.Fatalf("create beyond the cap: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if p := r.problem(t); p.Type != kindStoreFull.typeURI() {
		t.Errorf("type %s", p.Type)
	}
	owner := tokenFor(t, "full-0")
	if r := call(t, tc, request{method: "GET", path: "/accounts/sessions/" + ids[0], token: owner}); r.status != 200 {
		t.Errorf("read while full: %d", r.status)
	}
	if r := call(t, tc, request{method: "PUT", path: "/accounts/sessions/" + ids[0], token: owner, body: `{"payload":{"still":"works"}}`}); r.status != 200 {
		t.Errorf("update while full: %d", r.status)
	}
	if r := call(t, tc, request{method: "DELETE", path: "/accounts/sessions/" + ids[0], token: owner}); r.status != 204 {
		t.Errorf("delete while full: %d", r.status)
	}
	create(t, tc, "", other, `{"payload":{}}`)
}
