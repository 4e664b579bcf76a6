package ownidsessions

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
)

// TestSecurityFromTheDocument: each operation's security is held to the
// token in forward mode: public, the document's default, one scheme with
// scopes, two alternatives (OR), two schemes together (AND), and a scheme
// left to another handler.
func TestSecurityFromTheDocument(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(forwardConfig(be.URL, "off", "spec testdata/specs/scoped.yaml\n\t\tignore_scheme Key"), "caddyfile")
	tokens := map[string]string{
		"none":       "",
		"no scopes":  tokenFor(t, "scopes"),
		"read":       tokenWith(t, "scopes", jwt.MapClaims{"scope": "read"}),
		"read write": tokenWith(t, "scopes", jwt.MapClaims{"scope": "write read"}),
		"admin":      tokenWith(t, "scopes", jwt.MapClaims{"scope": "admin"}),
		"scp array":  tokenWith(t, "scopes", jwt.MapClaims{"scp": []any{"read", "profile"}}),
		"scp string": tokenWith(t, "scopes", jwt.MapClaims{"scp": "profile read"}),
	}
	const noToken = `Bearer realm="ownid_sessions"`
	scope := func(s string) string {
		return `Bearer realm="ownid_sessions", error="insufficient_scope", scope="` + s + `"`
	}
	// want: status, and the challenge for 401 and 403.
	type want struct {
		status    int
		challenge string
	}
	ok := want{200, ""}
	cases := map[string]map[string]want{
		"/public":  {"none": ok, "no scopes": ok, "read": ok},
		"/default": {"none": {401, noToken}, "no scopes": ok, "read": ok},
		"/read":    {"none": {401, noToken}, "no scopes": {403, scope("read")}, "read": ok, "admin": {403, scope("read")}, "scp array": ok, "scp string": ok},
		"/either":  {"none": {401, noToken}, "read": {403, scope("admin")}, "read write": ok, "admin": ok},
		"/both":    {"read": {403, scope("read profile")}, "scp array": ok, "scp string": ok},
		"/keyed":   {"read": {403, scope("write")}, "read write": ok},
	}
	for path, byToken := range cases {
		for name, w := range byToken {
			before := be.count()
			r := call(t, tc, request{method: "GET", path: path, token: tokens[name], unchecked: true})
			if r.status != w.status {
				t.Errorf("GET %s with %s: %d %s, want %d", path, name, r.status, r.body, w.status)
				continue
			}
			if got := r.header.Get("WWW-Authenticate"); w.status >= 400 && got != w.challenge {
				t.Errorf("GET %s with %s: WWW-Authenticate %q, want %q", path, name, got, w.challenge)
			}
			if w.status == 403 {
				if p := r.problem(t); p.Type != kindInsufficientScope.typeURI() {
					t.Errorf("GET %s with %s: type %s", path, name, p.Type)
				}
			}
			if reached := be.count() > before; reached != (w.status == 200) {
				t.Errorf("GET %s with %s: reached the backend: %v", path, name, reached)
			}
		}
	}
}

// TestSecurityServeMode: the same rules in serve mode, on a session
// contract whose list needs sessions:read (or admin) and whose create needs
// sessions:write with the bearer scheme.
func TestSecurityServeMode(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig("grace_period 1ns", `
		spec testdata/specs/scoped-sessions.yaml
		store memory scoped-test
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}`), "caddyfile")
	writer := tokenWith(t, "scoped", jwt.MapClaims{"scope": "sessions:write"})
	reader := tokenWith(t, "scoped", jwt.MapClaims{"scope": "sessions:read"})
	admin := tokenWith(t, "scoped", jwt.MapClaims{"scp": []any{"admin"}})
	for _, c := range []struct {
		name, method, token, body string
		status                    int
		challenge                 string
	}{
		{"create without the scope", "POST", reader, `{"payload":{}}`, 403, `Bearer realm="ownid_sessions", error="insufficient_scope", scope="sessions:write"`},
		{"create", "POST", writer, `{"payload":{}}`, 201, ""},
		{"list without the scope", "GET", writer, "", 403, `Bearer realm="ownid_sessions", error="insufficient_scope", scope="sessions:read"`},
		{"list with sessions:read", "GET", reader, "", 200, ""},
		{"list as admin", "GET", admin, "", 200, ""},
		{"list without a token", "GET", "", "", 401, `Bearer realm="ownid_sessions"`},
	} {
		r := call(t, tc, request{method: c.method, path: "/app/accounts/sessions", token: c.token, body: c.body, unchecked: true})
		if r.status != c.status || r.header.Get("WWW-Authenticate") != c.challenge {
			t.Errorf("%s: %d %q %s, want %d %q", c.name, r.status, r.header.Get("WWW-Authenticate"), r.body, c.status, c.challenge)
		}
	}
	// getSession is public in this document: no scope is needed, but serve
	// mode still needs a token to know whose session it is.
	s, _ := create(t, tc, "/app", writer, `{"payload":{}}`)
	if r := call(t, tc, request{method: "GET", path: "/app/accounts/sessions/" + s.ID, token: tokenFor(t, "scoped"), unchecked: true}); r.status != 200 {
		t.Errorf("public get with a token without scopes: %d %s", r.status, r.body)
	}
	if r := call(t, tc, request{method: "GET", path: "/app/accounts/sessions/" + s.ID, unchecked: true}); r.status != 401 {
		t.Errorf("public get without a token in serve mode: %d, want 401", r.status)
	}
}

// TestSchemeBinding: a scheme bound to a provider holds only for tokens
// that provider verified; two providers with the same secret stay apart.
func TestSchemeBinding(t *testing.T) {
	t.Setenv("OWNID_TEST_SECRET_B", "another-test-secret-0123456789abcdef")
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(strings.Replace(forwardConfig(be.URL, "off", `spec testdata/specs/scoped.yaml
		ignore_scheme Key
		scheme OAuth corp
		jwt partner {
			alg HS256
			secret {env.OWNID_TEST_SECRET_B}
			issuer https://partner.example
		}`), "jwt {", "jwt corp {\n\t\t\tissuer https://corp.example", 1), "caddyfile")
	corp := tokenWith(t, "u", jwt.MapClaims{"iss": "https://corp.example", "scope": "read"})
	partnerClaims := claimsFor("u")
	partnerClaims["iss"], partnerClaims["scope"] = "https://partner.example", "read"
	partner := signWith(t, "HS256", []byte("another-test-secret-0123456789abcdef"), partnerClaims)
	if r := call(t, tc, request{method: "GET", path: "/read", token: corp, unchecked: true}); r.status != 200 {
		t.Errorf("corp token on a scheme bound to corp: %d %s", r.status, r.body)
	}
	r := call(t, tc, request{method: "GET", path: "/read", token: partner, unchecked: true})
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="ownid_sessions", error="invalid_token"` {
		t.Errorf("partner token on a scheme bound to corp: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	// The default scheme (Bearer) is not bound: both providers satisfy it.
	if r := call(t, tc, request{method: "GET", path: "/default", token: partner, unchecked: true}); r.status != 200 {
		t.Errorf("partner token on an unbound scheme: %d %s", r.status, r.body)
	}
}

// TestPreflight: a CORS preflight on a contract path goes to the next
// handler without a token under preflight pass (the default), and is a
// 405 under preflight refuse.
func TestPreflight(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	preflight := map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
	for _, c := range []struct {
		extra  string
		header map[string]string
		status int
		passed bool
	}{
		{"", preflight, 200, true},
		{"preflight pass", preflight, 200, true},
		{"", map[string]string{"Origin": "https://app.example"}, 405, false}, // not a preflight
		{"preflight refuse", preflight, 405, false},
	} {
		tc.InitServer(forwardConfig(be.URL, "off", c.extra), "caddyfile")
		before := be.count()
		// The token is there so that a refused preflight meets the method
		// check (a missing token is refused first); a passed one never
		// looks at it.
		r := call(t, tc, request{method: "OPTIONS", path: "/app/accounts/sessions/s1", token: tokenFor(t, "cors"), header: c.header, unchecked: true})
		if r.status != c.status || (be.count() > before) != c.passed {
			t.Errorf("%q %v: %d, reached the backend %v", c.extra, c.header, r.status, be.count() > before)
		}
	}
	tc.InitServer(forwardConfig(be.URL, "off", ""), "caddyfile")
	before := be.count()
	if r := call(t, tc, request{method: "OPTIONS", path: "/app/accounts/sessions", header: preflight, unchecked: true}); r.status != 200 || be.count() != before+1 {
		t.Errorf("preflight without a token: %d, reached the backend %v", r.status, be.count() > before)
	}
}

// TestResourceMetadata: the RFC 9728 document is served, and every 401
// challenge points at it.
func TestResourceMetadata(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig("grace_period 1ns", `
		spec testdata/specs/scoped-sessions.yaml
		resource_metadata https://api.example.com/sessions
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
			issuer https://login.example.com
		}`), "caddyfile")
	r := call(t, tc, request{method: "GET", path: "/.well-known/oauth-protected-resource/sessions"})
	var doc resourceMetadata
	r.json(t, &doc)
	if r.status != 200 || doc.Resource != "https://api.example.com/sessions" ||
		!reflect.DeepEqual(doc.AuthorizationServers, []string{"https://login.example.com"}) ||
		!reflect.DeepEqual(doc.ScopesSupported, []string{"admin", "sessions:read", "sessions:write"}) {
		t.Fatalf("metadata: %d %s", r.status, r.body)
	}
	want := `Bearer realm="ownid_sessions", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/sessions"`
	if r := call(t, tc, request{method: "GET", path: "/app/accounts/sessions", unchecked: true}); r.status != 401 || r.header.Get("WWW-Authenticate") != want {
		t.Errorf("401 without a token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	bad := `Bearer realm="ownid_sessions", error="invalid_token", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/sessions"`
	if r := call(t, tc, request{method: "GET", path: "/app/accounts/sessions", token: "not.a.token", unchecked: true}); r.status != 401 || r.header.Get("WWW-Authenticate") != bad {
		t.Errorf("401 with a bad token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
}

// TestPublicOperationStripsQueryToken: on a public operation a query token
// is still verified when sent, and never goes on to the backend.
func TestPublicOperationStripsQueryToken(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(forwardConfig(be.URL, "off", "spec testdata/specs/scoped.yaml\n\t\tignore_scheme Key\n\t\ttoken_from query access_token"), "caddyfile")
	tok := tokenFor(t, "public")
	if r := call(t, tc, request{method: "GET", path: "/public?access_token=" + tok + "&x=1", unchecked: true}); r.status != 200 {
		t.Fatalf("public with a query token: %d %s", r.status, r.body)
	}
	if got := be.last(); got.query != "x=1" {
		t.Errorf("the backend saw the query %q", got.query)
	}
	if r := call(t, tc, request{method: "GET", path: "/public?access_token=forged", unchecked: true}); r.status != 401 {
		t.Errorf("public with a forged query token: %d, want 401", r.status)
	}
	if r := call(t, tc, request{method: "GET", path: "/public", unchecked: true}); r.status != 200 {
		t.Errorf("public without a token: %d", r.status)
	}
}
