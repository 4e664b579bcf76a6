package ownidsessions

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
)

var base = "http://localhost:9080"

// e2eConfig is the serve-mode site of the end-to-end tests, with a fallback
// respond in the same block: the module's own order must put it first.
func e2eConfig(maxSessions int) string {
	return fmt.Sprintf(`
{
`+testGlobals+`
	grace_period 1ns
}
http://localhost:9080 {
	ownid_sessions {
		max_body 1KiB
		max_sessions %d
		session_timeout 10m
		jwt {
			alg HS256 RS256 PS256 ES256 ES384 ES512 EdDSA
			secret {env.OWNID_TEST_SECRET}
			key %s %s %s
		}
	}
	respond "fallback" 200
}
`, maxSessions, testKeys.RSAPEM, testKeys.ECPEM, testKeys.EdPEM)
}

func newServeTester(t *testing.T, maxSessions int) *caddytest.Tester {
	tc := caddytest.NewTester(t)
	tc.InitServer(e2eConfig(maxSessions), "caddyfile")
	return tc
}

func TestServeModeLifecycle(t *testing.T) {
	tc := newServeTester(t, 100)
	alice := tokenFor(t, "alice")

	s, r := create(t, tc, "/app1", alice, `{"payload": {"theme": "dark"}, "timeout": 600}`)
	if len(s.ID) < 22 || s.Timeout != 600 || s.Payload["theme"] != "dark" || s.Created == "" || s.Created != s.LastActive {
		t.Fatalf("created session = %+v", s)
	}
	if got, want := r.header.Get("Location"), "/app1/accounts/sessions/"+s.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if _, err := time.Parse(timeLayout, s.Created); err != nil || !strings.HasSuffix(s.Created, "Z") || len(s.Created) != len("2006-01-02T15:04:05.000Z") {
		t.Errorf("created %q is not RFC 3339 UTC with milliseconds", s.Created)
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("create answered without ETag")
	}

	// Get: same session, same ETag; reading is not activity.
	advanceClock(t, time.Second)
	r = call(t, tc, request{method: "GET", path: "/app1/accounts/sessions/" + s.ID, token: alice})
	var got sessionOut
	r.json(t, &got)
	if r.status != 200 || got.ID != s.ID || got.LastActive != s.LastActive || r.header.Get("ETag") != etag {
		t.Fatalf("get: %d %s etag %q", r.status, r.body, r.header.Get("ETag"))
	}

	// List holds it.
	r = call(t, tc, request{method: "GET", path: "/app1/accounts/sessions", token: alice})
	var list []sessionOut
	r.json(t, &list)
	if r.status != 200 || len(list) != 1 || list[0].ID != s.ID {
		t.Fatalf("list: %d %s", r.status, r.body)
	}

	// Put replaces the payload whole and refreshes lastActive; the ETag
	// changes even for the same payload.
	r = call(t, tc, request{method: "PUT", path: "/app1/accounts/sessions/" + s.ID, token: alice,
		body: `{"payload": {"lang": "en"}}`})
	got = sessionOut{}
	r.json(t, &got)
	if r.status != 200 || got.Payload["lang"] != "en" || got.Payload["theme"] != nil || got.LastActive == s.LastActive || got.Created != s.Created {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	etag2 := r.header.Get("ETag")
	r = call(t, tc, request{method: "PUT", path: "/app1/accounts/sessions/" + s.ID, token: alice,
		body: `{"payload": {"lang": "en"}}`})
	etag3 := r.header.Get("ETag")
	if etag2 == etag || etag3 == etag2 || etag3 == "" {
		t.Fatalf("etags %q %q %q must all differ", etag, etag2, etag3)
	}

	// A body without payload keeps it and only refreshes lastActive.
	advanceClock(t, time.Second)
	r = call(t, tc, request{method: "PUT", path: "/app1/accounts/sessions/" + s.ID, token: alice, body: `{}`})
	var kept sessionOut
	r.json(t, &kept)
	if r.status != 200 || kept.Payload["lang"] != "en" || kept.LastActive == got.LastActive {
		t.Fatalf("put without payload: %d %s", r.status, r.body)
	}

	// If-Match: a stale tag changes nothing; the current one writes.
	stale := call(t, tc, request{method: "PUT", path: "/app1/accounts/sessions/" + s.ID, token: alice,
		body: `{"payload": {"x": 1}}`, header: map[string]string{"If-Match": etag}})
	if stale.status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d %s", stale.status, stale.body)
	}
	stale.problem(t)
	current := call(t, tc, request{method: "GET", path: "/app1/accounts/sessions/" + s.ID, token: alice})
	var unchanged sessionOut
	current.json(t, &unchanged)
	if unchanged.Payload["lang"] != "en" || unchanged.Payload["x"] != nil {
		t.Fatalf("a 412 changed the session: %s", current.body)
	}
	cur := current.header.Get("ETag")
	r = call(t, tc, request{method: "PUT", path: "/app1/accounts/sessions/" + s.ID, token: alice,
		body: `{"payload": {"x": 1}}`, header: map[string]string{"If-Match": `"nope", ` + cur}})
	if r.status != 200 {
		t.Fatalf("matching If-Match: %d %s", r.status, r.body)
	}

	// Delete honours If-Match too, then the session is gone.
	r = call(t, tc, request{method: "DELETE", path: "/app1/accounts/sessions/" + s.ID, token: alice,
		header: map[string]string{"If-Match": cur}})
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("delete with stale If-Match: %d %s", r.status, r.body)
	}
	r = call(t, tc, request{method: "DELETE", path: "/app1/accounts/sessions/" + s.ID, token: alice})
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("delete: %d %q", r.status, r.body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		r = call(t, tc, request{method: m, path: "/app1/accounts/sessions/" + s.ID, token: alice})
		if r.status != http.StatusNotFound {
			t.Fatalf("%s after delete: %d %s", m, r.status, r.body)
		}
		r.problem(t)
	}
	r = call(t, tc, request{method: "GET", path: "/app1/accounts/sessions", token: alice})
	if r.status != 200 || string(r.body) != "[]" {
		t.Fatalf("list after delete: %d %s", r.status, r.body)
	}
}

func TestServeModeIsolation(t *testing.T) {
	tc := newServeTester(t, 100)
	alice, bob := tokenFor(t, "alice-iso"), tokenFor(t, "bob-iso")
	s, _ := create(t, tc, "/appA", alice, `{"payload": {"secret": "alice's"}}`)

	// Another account, and the same account in another app, see nothing:
	// the same 404 as for an id that never existed.
	never := call(t, tc, request{method: "GET", path: "/appA/accounts/sessions/neverexisted", token: alice})
	never.problem(t)
	for name, rq := range map[string]request{
		"other account get":    {method: "GET", path: "/appA/accounts/sessions/" + s.ID, token: bob},
		"other account put":    {method: "PUT", path: "/appA/accounts/sessions/" + s.ID, token: bob, body: `{"payload": {}}`},
		"other account delete": {method: "DELETE", path: "/appA/accounts/sessions/" + s.ID, token: bob},
		"other app get":        {method: "GET", path: "/appB/accounts/sessions/" + s.ID, token: alice},
		"no app get":           {method: "GET", path: "/accounts/sessions/" + s.ID, token: alice},
	} {
		r := call(t, tc, rq)
		if r.status != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", name, r.status)
			continue
		}
		p := r.problem(t)
		if p.Detail != never.problem(t).Detail || bytes.Contains(r.body, []byte("alice")) {
			t.Errorf("%s: the 404 differs from a missing session's: %s", name, r.body)
		}
	}
	for name, rq := range map[string]request{
		"bob's list":         {method: "GET", path: "/appA/accounts/sessions", token: bob},
		"alice in other app": {method: "GET", path: "/appB/accounts/sessions", token: alice},
	} {
		if r := call(t, tc, rq); r.status != 200 || string(r.body) != "[]" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// The session is untouched by all of that.
	r := call(t, tc, request{method: "GET", path: "/appA/accounts/sessions/" + s.ID, token: alice})
	if r.status != 200 || !bytes.Contains(r.body, []byte("alice's")) {
		t.Fatalf("owner's get: %d %s", r.status, r.body)
	}
}

func TestServeModeExpiry(t *testing.T) {
	tc := newServeTester(t, 100)
	carol := tokenFor(t, "carol-exp")
	short, _ := create(t, tc, "", carol, `{"payload": {}, "timeout": 60}`)
	long, _ := create(t, tc, "", carol, `{"payload": {}}`) // session_timeout 10m

	// A write keeps it alive: lastActive moves, so the idle time restarts.
	advanceClock(t, 50*time.Second)
	if r := call(t, tc, request{method: "PUT", path: "/accounts/sessions/" + short.ID, token: tokenFor(t, "carol-exp"), body: `{}`}); r.status != 200 {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	advanceClock(t, 50*time.Second) // 100s after create, 50s after the write
	if r := call(t, tc, request{method: "GET", path: "/accounts/sessions/" + short.ID, token: tokenFor(t, "carol-exp")}); r.status != 200 {
		t.Fatalf("refreshed session expired early: %d %s", r.status, r.body)
	}
	// A read is not activity: 61s after the write it has expired.
	advanceClock(t, 11*time.Second)
	carol = tokenFor(t, "carol-exp")
	if r := call(t, tc, request{method: "GET", path: "/accounts/sessions/" + short.ID, token: carol}); r.status != http.StatusNotFound {
		t.Fatalf("expired session: %d %s", r.status, r.body)
	}
	if r := call(t, tc, request{method: "PUT", path: "/accounts/sessions/" + short.ID, token: carol, body: `{}`}); r.status != http.StatusNotFound {
		t.Fatalf("put on expired session: %d %s", r.status, r.body)
	}
	var list []sessionOut
	call(t, tc, request{method: "GET", path: "/accounts/sessions", token: carol}).json(t, &list)
	if len(list) != 1 || list[0].ID != long.ID || list[0].Timeout != 600 {
		t.Fatalf("list after expiry = %+v, want only %s", list, long.ID)
	}
}

func TestServeModeMaxSessions(t *testing.T) {
	tc := newServeTester(t, 2)
	dave := tokenFor(t, "dave-max")
	first, _ := create(t, tc, "/m", dave, `{"payload": {}}`)
	create(t, tc, "/m", dave, `{"payload": {}}`)
	r := call(t, tc, request{method: "POST", path: "/m/accounts/sessions", token: dave, body: `{"payload": {}}`})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("third session: %d %s", r.status, r.body)
	}
	r.problem(t)
	// The limit is per account and per app.
	create(t, tc, "/m", tokenFor(t, "erin-max"), `{"payload": {}}`)
	create(t, tc, "/other", dave, `{"payload": {}}`)
	// Deleting one frees a place.
	if r := call(t, tc, request{method: "DELETE", path: "/m/accounts/sessions/" + first.ID, token: dave}); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	create(t, tc, "/m", dave, `{"payload": {}}`)
}

func TestServeModeEveryAlgorithm(t *testing.T) {
	tc := newServeTester(t, 100)
	for _, alg := range []string{"HS256", "RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"} {
		r := call(t, tc, request{method: "GET", path: "/algs/accounts/sessions", token: sign(t, alg, claimsFor("grace-alg"))})
		if r.status != 200 {
			t.Errorf("%s: status %d %s", alg, r.status, r.body)
		}
	}
	// A key is only used with its own algorithm: an ES256 header on a token
	// signed with the P-384 key fails.
	mixed := jwt.NewWithClaims(jwt.SigningMethodES384, claimsFor("grace-alg"))
	mixed.Header["alg"] = "ES256"
	str, _ := mixed.SignedString(testKeys.EC384)
	if r := call(t, tc, request{method: "GET", path: "/algs/accounts/sessions", token: str}); r.status != 401 {
		t.Errorf("ES256 header over a P-384 signature: %d", r.status)
	}
}

func TestPassThroughOffContract(t *testing.T) {
	tc := newServeTester(t, 100)
	// Paths the contract does not describe, read any way, go on untouched.
	for _, p := range []string{"/", "/accounts", "/accounts/session", "/health", "/accounts/sessions/a/b",
		"/accounts/sessionsX", "/app/accounts/sessions-archive/1", "/static/accounts/sessions.css"} {
		r := call(t, tc, request{method: "GET", path: p})
		if r.status != 200 || string(r.body) != "fallback" {
			t.Errorf("%s: %d %q, want the fallback respond", p, r.status, r.body)
		}
	}
	// Near misses of the contract's paths are refused, not passed on: a
	// backend might read them as the contract's paths.
	for _, p := range []string{"/accounts/sessions/", "/app/Accounts/Sessions",
		"/app/accounts//sessions", "/app/accounts/sessions/./x", "/app/accounts/sessions/abc%2F", "/app/accounts/sessions/.."} {
		r := call(t, tc, request{method: "GET", path: p, token: tokenFor(t, "near")})
		if r.status != 400 {
			t.Errorf("%s: %d %q, want 400", p, r.status, r.body)
		}
	}
	// An app prefix is bounded and free of control characters: up to 256
	// bytes, counted without its leading "/" (found from outside: the
	// bound counted the "/").
	for _, p := range []string{"/" + strings.Repeat("a", 257) + "/accounts/sessions", "/" + strings.Repeat("a", 300) + "/accounts/sessions", "/a%00b/accounts/sessions", "/a%0Ab/accounts/sessions"} {
		if r := call(t, tc, request{method: "GET", path: p, token: tokenFor(t, "near")}); r.status != 400 {
			t.Errorf("%.40s…: %d, want 400", p, r.status)
		}
	}
	if p := "/" + strings.Repeat("a", 256) + "/accounts/sessions"; call(t, tc, request{method: "GET", path: p, token: tokenFor(t, "near")}).status != 200 {
		t.Errorf("a 256-byte app prefix is refused")
	}
}

func TestSessionsSurviveReload(t *testing.T) {
	tc := newServeTester(t, 100)
	heidi := tokenFor(t, "heidi-reload")
	s, _ := create(t, tc, "/reload", heidi, `{"payload": {"kept": true}}`)
	etag := call(t, tc, request{method: "GET", path: "/reload/accounts/sessions/" + s.ID, token: heidi}).header.Get("ETag")

	// A changed config (other limits) loaded through the admin API.
	tc.InitServer(e2eConfig(7), "caddyfile")
	r := call(t, tc, request{method: "GET", path: "/reload/accounts/sessions/" + s.ID, token: heidi})
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"kept":true`)) || r.header.Get("ETag") != etag {
		t.Fatalf("after reload: %d %s etag %q (was %q)", r.status, r.body, r.header.Get("ETag"), etag)
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
