package ownidsessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
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
`, maxSessions, testKeys.rsaPEM, testKeys.ecPEM, testKeys.edPEM)
}

func newServeTester(t *testing.T, maxSessions int) *caddytest.Tester {
	tc := caddytest.NewTester(t)
	tc.InitServer(e2eConfig(maxSessions), "caddyfile")
	return tc
}

// call sends one request through the real Caddy and returns the response
// with its body read. Every answer from the module is checked against the
// contract document, as a client of the contract would see it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
}

func (r reply) problem(t *testing.T) problemBody {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %q)", ct, r.body)
	}
	var p problemBody
	r.json(t, &p)
	if p.Status != r.status || !strings.HasPrefix(p.Type, problemTypeBase) || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem for status %d: %+v", r.status, p)
	}
	return p
}

type request struct {
	method, path, token, body string
	header                    map[string]string
	// unchecked skips checking the answer against the embedded contract:
	// for answers that are not the module's own (forward mode).
	unchecked bool
}

func call(t *testing.T, tc *caddytest.Tester, rq request) reply {
	t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequest(rq.method, base+rq.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := doSettled(t, tc, req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: data}
	checkAgainstContract(t, rq, resp, data)
	return r
}

// doSettled sends req, once more if the connection was dropped before any
// answer came. Caddy binds each config's listener anew with SO_REUSEPORT, so
// a connection made while a config is being replaced can land in the old
// listener's queue and be reset when it closes, before any handler read it:
// that is the reload, not the module under test.
func doSettled(t *testing.T, tc *caddytest.Tester, req *http.Request) (*http.Response, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if req.GetBody != nil && attempt > 1 {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
		resp, err := tc.Client.Do(req)
		if err == nil || attempt == 3 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return resp, err
		}
		t.Logf("%s %s: connection dropped during a config change (%v); sending again", req.Method, req.URL.Path, err)
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAgainstContract validates a response of the module with the
// validator's response validation. 405 is the one answer on an operation the
// document does not declare, so there is nothing to check it against.
func checkAgainstContract(t *testing.T, rq request, resp *http.Response, body []byte) {
	t.Helper()
	rt, ok := parseRoute(strings.SplitN(rq.path, "?", 2)[0])
	if !ok || rq.unchecked || resp.StatusCode == http.StatusMethodNotAllowed {
		return
	}
	c, err := loadContract("")
	if err != nil {
		t.Fatal(err)
	}
	vreq := httptest.NewRequest(rq.method, "http://localhost"+rt.path, nil)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := c.validator.ValidateHttpResponse(vreq, resp); !ok {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		t.Errorf("%s %s answered %d %s, which breaks the contract:\n%s", rq.method, rq.path, resp.StatusCode, body, strings.Join(msgs, "\n"))
	}
}

type sessionOut struct {
	ID         string         `json:"id"`
	Created    string         `json:"created"`
	Timeout    int64          `json:"timeout"`
	LastActive string         `json:"lastActive"`
	Payload    map[string]any `json:"payload"`
}

func create(t *testing.T, tc *caddytest.Tester, app, token, body string) (sessionOut, reply) {
	t.Helper()
	r := call(t, tc, request{method: "POST", path: app + "/accounts/sessions", token: token, body: body})
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d, body %s", r.status, r.body)
	}
	var s sessionOut
	r.json(t, &s)
	return s, r
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

func TestServeModeRejections(t *testing.T) {
	tc := newServeTester(t, 100)
	frank := tokenFor(t, "frank-rej")
	s, _ := create(t, tc, "/r", frank, `{"payload": {}}`)
	item := "/r/accounts/sessions/" + s.ID
	coll := "/r/accounts/sessions"

	expired := claimsFor("frank-rej")
	expired["exp"] = testNow().Add(-time.Hour).Unix()
	expired["iat"] = testNow().Add(-2 * time.Hour).Unix()
	noExp := claimsFor("frank-rej")
	delete(noExp, "exp")
	noSub := claimsFor("")
	delete(noSub, "sub")
	future := claimsFor("frank-rej")
	future["nbf"] = testNow().Add(time.Hour).Unix()
	wrongKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("frank-rej")).SignedString([]byte("another-secret-of-32-bytes-or-more!!"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor("frank-rej")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// Algorithm confusion: HS256 keyed with the RSA public key's PEM.
	rsaPEM, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("frank-rej")).SignedString(mustRead(t, testKeys.rsaPEM))
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, claimsFor("frank-rej")).SignedString([]byte(testSecret))

	tests := []struct {
		name      string
		rq        request
		status    int
		kind      problemKind
		errorsAt  string // a location the errors list must name
		challenge string // the WWW-Authenticate header, for 401
		allow     string // the Allow header, for 405
	}{
		{name: "no token", rq: request{method: "GET", path: coll}, status: 401, kind: kindMissingToken, challenge: `Bearer realm="ownid_sessions"`},
		{name: "not bearer", rq: request{method: "GET", path: coll, header: map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}}, status: 401, kind: kindInvalidToken, challenge: `Bearer realm="ownid_sessions", error="invalid_token"`},
		{name: "garbage token", rq: request{method: "GET", path: coll, token: "a.b.c"}, status: 401, kind: kindInvalidToken},
		{name: "expired", rq: request{method: "GET", path: coll, token: sign(t, "HS256", expired)}, status: 401, kind: kindInvalidToken},
		{name: "not yet valid", rq: request{method: "GET", path: coll, token: sign(t, "HS256", future)}, status: 401, kind: kindInvalidToken},
		{name: "no exp", rq: request{method: "GET", path: coll, token: sign(t, "HS256", noExp)}, status: 401, kind: kindInvalidToken},
		{name: "no sub", rq: request{method: "GET", path: coll, token: sign(t, "HS256", noSub)}, status: 401, kind: kindInvalidToken},
		{name: "wrong key", rq: request{method: "GET", path: coll, token: wrongKey}, status: 401, kind: kindInvalidToken},
		{name: "alg none", rq: request{method: "GET", path: coll, token: none}, status: 401, kind: kindInvalidToken},
		{name: "alg confusion", rq: request{method: "GET", path: coll, token: rsaPEM}, status: 401, kind: kindInvalidToken},
		{name: "alg not allowed", rq: request{method: "GET", path: coll, token: hs384}, status: 401, kind: kindInvalidToken},

		{name: "options", rq: request{method: "OPTIONS", path: coll, token: frank}, status: 405, kind: kindMethodNotAllowed, allow: "GET, POST"},
		{name: "trace", rq: request{method: "TRACE", path: item, token: frank}, status: 405, kind: kindMethodNotAllowed, allow: "DELETE, GET, PUT"},
		{name: "patch", rq: request{method: "PATCH", path: item, token: frank, body: `{}`}, status: 405, kind: kindMethodNotAllowed, allow: "DELETE, GET, PUT"},
		{name: "delete collection", rq: request{method: "DELETE", path: coll, token: frank}, status: 405, kind: kindMethodNotAllowed, allow: "GET, POST"},

		{name: "bad session id", rq: request{method: "GET", path: "/r/accounts/sessions/" + strings.Repeat("a", 129), token: frank}, status: 400, kind: kindInvalidSessionID, errorsAt: "sessionId"},
		{name: "escaped session id", rq: request{method: "GET", path: "/r/accounts/sessions/bad%21id", token: frank}, status: 400, kind: kindInvalidRequest, errorsAt: "path"},
		{name: "long session id", rq: request{method: "GET", path: "/r/accounts/sessions/" + strings.Repeat("a", 129), token: frank}, status: 400, kind: kindInvalidSessionID, errorsAt: "sessionId"},
		{name: "malformed json", rq: request{method: "PUT", path: item, token: frank, body: `{"payload": `}, status: 400, kind: kindMalformedJSON},
		{name: "array body", rq: request{method: "PUT", path: item, token: frank, body: `[]`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "string body", rq: request{method: "POST", path: coll, token: frank, body: `"x"`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "null body", rq: request{method: "PUT", path: item, token: frank, body: `null`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "payload not object", rq: request{method: "PUT", path: item, token: frank, body: `{"payload": [1]}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/payload"},
		{name: "create without payload", rq: request{method: "POST", path: coll, token: frank, body: `{"timeout": 5}`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "timeout zero", rq: request{method: "POST", path: coll, token: frank, body: `{"payload": {}, "timeout": 0}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/timeout"},
		{name: "timeout not integer", rq: request{method: "POST", path: coll, token: frank, body: `{"payload": {}, "timeout": 1.5}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/timeout"},
		{name: "timeout huge", rq: request{method: "POST", path: coll, token: frank, body: `{"payload": {}, "timeout": 1e300}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/timeout"},
		{name: "empty body", rq: request{method: "PUT", path: item, token: frank, header: map[string]string{"Content-Type": "application/json"}}, status: 400, kind: kindInvalidRequest, errorsAt: "-"},

		{name: "body too large", rq: request{method: "PUT", path: item, token: frank, body: `{"payload": {"x": "` + strings.Repeat("a", 1100) + `"}}`}, status: 413, kind: kindBodyTooLarge},
		{name: "not json", rq: request{method: "PUT", path: item, token: frank, body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}, status: 415, kind: kindUnsupportedMediaType},
		{name: "no content type", rq: request{method: "POST", path: coll, token: frank, body: `{}`, header: map[string]string{"Content-Type": ""}}, status: 415, kind: kindUnsupportedMediaType},
		{name: "missing session", rq: request{method: "PUT", path: "/r/accounts/sessions/nosuchsession", token: frank, body: `{}`}, status: 404, kind: kindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, tc, tt.rq)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			p := r.problem(t)
			if p.Type != tt.kind.typeURI() {
				t.Errorf("type %q, want %q", p.Type, tt.kind.typeURI())
			}
			if tt.status == 401 {
				want := tt.challenge
				if want == "" {
					want = `Bearer realm="ownid_sessions", error="invalid_token"`
				}
				if got := r.header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
				if tt.rq.token != "" && bytes.Contains(r.body, []byte(tt.rq.token)) {
					t.Errorf("the token is echoed in the body")
				}
			}
			if tt.allow != "" && r.header.Get("Allow") != tt.allow {
				t.Errorf("Allow = %q, want %q", r.header.Get("Allow"), tt.allow)
			}
			if tt.kind == kindInvalidRequest || tt.kind == kindInvalidSessionID {
				var full struct {
					Errors []fieldError `json:"errors"`
				}
				r.json(t, &full)
				found := false
				for _, e := range full.Errors {
					found = found || e.Location == tt.errorsAt && e.Message != ""
				}
				if tt.errorsAt != "-" && !found {
					t.Errorf("errors %+v name no failure at %q", full.Errors, tt.errorsAt)
				}
			}
		})
	}
	// None of it touched the session.
	r := call(t, tc, request{method: "GET", path: item, token: frank})
	if r.status != 200 || r.header.Get("ETag") != `"1"` {
		t.Fatalf("session after rejections: %d %s etag %s", r.status, r.body, r.header.Get("ETag"))
	}
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
	str, _ := mixed.SignedString(testKeys.ec384)
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
	// An app prefix is bounded and free of control characters.
	for _, p := range []string{"/" + strings.Repeat("a", 300) + "/accounts/sessions", "/a%00b/accounts/sessions", "/a%0Ab/accounts/sessions"} {
		if r := call(t, tc, request{method: "GET", path: p, token: tokenFor(t, "near")}); r.status != 400 {
			t.Errorf("%.40s…: %d, want 400", p, r.status)
		}
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
