package ownidsessions

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
	"go.uber.org/zap"
)

var allAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// testVerifier accepts every algorithm with the test keys, as a handler
// would build it.
func testVerifier(t testing.TB, mutate func(*jwtauth.Config)) *jwtauth.Verifier {
	t.Helper()
	cfg := &jwtauth.Config{
		Algorithms: allAlgorithms,
		Secret:     testSecret,
		Keys:       []string{testKeys.RSAPEM, testKeys.ECPEM, testKeys.EdPEM},
	}
	if mutate != nil {
		mutate(cfg)
	}
	ctx, _ := newTestContext(t)
	repl := caddy.NewReplacer()
	v, err := jwtauth.New(cfg, jwtauth.Env{
		Ctx:      ctx,
		Replace:  func(s string) string { return repl.ReplaceKnown(s, "") },
		Now:      testNow,
		Logger:   zap.NewNop(),
		Observer: tokenMetrics{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifyToken verifies a bearer token and gives the problem the handler
// would answer with.
func verifyToken(v *jwtauth.Verifier, token string) (*jwtauth.Identity, *problem) {
	r := httptest.NewRequest("GET", "/accounts/sessions", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return verifyRequest(v, r)
}

func verifyRequest(v *jwtauth.Verifier, r *http.Request) (*jwtauth.Identity, *problem) {
	id, e := v.Verify(r)
	if e != nil {
		return nil, tokenProblem(e)
	}
	return id, nil
}

// TestTokenProblem: each refusal is answered with the problem type, status
// and challenge of its kind, and keeps its reason for the metrics.
func TestTokenProblem(t *testing.T) {
	v := testVerifier(t, func(c *jwtauth.Config) { c.Require = map[string][]string{"role": {"admin"}} })
	withRole := claimsFor("alice")
	withRole["role"] = "user"
	for name, tt := range map[string]struct {
		header    string
		kind      problemKind
		reason    string
		challenge string
	}{
		"no token":    {"", kindMissingToken, "missing", `Bearer realm="ownid_sessions"`},
		"not bearer":  {"Basic Zm9vOmJhcg==", kindInvalidToken, "malformed", `Bearer realm="ownid_sessions", error="invalid_token"`},
		"bad token":   {"Bearer " + resign(tokenFor(t, "alice"), "AAAA"), kindInvalidToken, "signature", `Bearer realm="ownid_sessions", error="invalid_token"`},
		"requirement": {"Bearer " + sign(t, "HS256", withRole), kindForbidden, "requirement", ""},
	} {
		r := httptest.NewRequest("GET", "/accounts/sessions", nil)
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		_, p := verifyRequest(v, r)
		if p == nil || p.kind != tt.kind || p.reason != tt.reason {
			t.Errorf("%s: %v (reason %q), want %s (%s)", name, p, p.reason, problemKinds[tt.kind].slug, tt.reason)
			continue
		}
		w := httptest.NewRecorder()
		p.write(w)
		if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge || len(w.Header().Values("WWW-Authenticate")) > 1 {
			t.Errorf("%s: WWW-Authenticate %q, want %q", name, got, tt.challenge)
		}
		if w.Code != tt.kind.status() {
			t.Errorf("%s: status %d", name, w.Code)
		}
	}
}

// TestOwnerOf: the account is (iss, sub); a token without sub, or with a
// NUL in either, speaks for none.
func TestOwnerOf(t *testing.T) {
	owner, p := ownerOf(&jwtauth.Identity{Issuer: "https://a", Subject: "alice"}, "/app")
	if p != nil || owner != (Owner{App: "/app", Issuer: "https://a", Subject: "alice"}) {
		t.Errorf("owner %+v, %v", owner, p)
	}
	for name, tt := range map[string]struct {
		id     jwtauth.Identity
		reason string
	}{
		"no sub":     {jwtauth.Identity{Issuer: "https://a"}, "no_sub"},
		"NUL in sub": {jwtauth.Identity{Subject: "a\x00b"}, "claims"},
		"NUL in iss": {jwtauth.Identity{Issuer: "a\x00", Subject: "alice"}, "claims"},
	} {
		_, p := ownerOf(&tt.id, "/app")
		if p == nil || p.kind != kindInvalidToken || p.reason != tt.reason {
			t.Errorf("%s: %v, want invalid-token (%s)", name, p, tt.reason)
			continue
		}
		if len(p.headers) != 1 || p.headers[0] != [2]string{"WWW-Authenticate", `Bearer realm="ownid_sessions", error="invalid_token"`} {
			t.Errorf("%s: headers %v", name, p.headers)
		}
	}
}

// tamper changes the payload of a token, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	c := claimsFor("mallory")
	enc, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SigningString()
	parts[1] = strings.Split(enc, ".")[1]
	return strings.Join(parts, ".")
}

// resign replaces a token's signature.
func resign(token, sig string) string {
	return token[:strings.LastIndexByte(token, '.')+1] + sig
}

// TestHostileTokens sends each kind of bad token through a real Caddy: every
// one gets 401 (403 for a failed claim rule), never a 5xx.
func TestHostileTokens(t *testing.T) {
	jwksKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	strangerKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "set-key", ALG: jwkset.AlgRS256, Key: &jwksKey.PublicKey})
	tc := caddytest.NewTester(t)
	tc.InitServer(fmt.Sprintf(`
{
`+testGlobals+`
	grace_period 1ns
	# Caddy itself answers 431 beyond 16 KiB of headers; let the big
	# tokens reach the module, which refuses them by its own bound.
	servers {
		max_header_size 1MB
	}
}
http://localhost:9080 {
	header >X-Account {http.auth.user.id}
	header >X-Role {http.auth.user.role}
	ownid_sessions {
		jwt {
			alg HS256 RS256 ES256 ES384 ES512
			secret {env.OWNID_TEST_SECRET}
			key %s %s
			jwks %s
			jwks_refetch_interval 1h
			issuer https://issuer.test
			audience sessions
			leeway 5s
			require role admin
		}
	}
}`, testKeys.RSAPEM, testKeys.ECPEM, srv.URL), "caddyfile")

	now := testNow()
	good := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "hostile", "iss": "https://issuer.test", "aud": "sessions", "role": []any{"user", "admin"},
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	set := func(k string, v any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good(nil)).SignedString(mustRead(t, testKeys.RSAPEM))

	// The valid token works, and its claims are placeholders for later
	// handlers.
	r := call(t, tc, request{method: "GET", path: "/h/accounts/sessions", token: sign(t, "RS256", good(nil))})
	if r.status != 200 || r.header.Get("X-Account") != "hostile" || r.header.Get("X-Role") != `["user","admin"]` {
		t.Fatalf("valid token: %d, X-Account %q, X-Role %q", r.status, r.header.Get("X-Account"), r.header.Get("X-Role"))
	}
	if r := call(t, tc, request{method: "GET", path: "/h/accounts/sessions", token: testkit.SignKid(t, "RS256", "set-key", jwksKey, good(nil))}); r.status != 200 {
		t.Fatalf("valid JWKS token: %d %s", r.status, r.body)
	}

	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"unsigned (alg none)", none, 401},
		{"HS256 keyed with the RSA public key PEM", confused, 401},
		{"expired", sign(t, "HS256", good(set("exp", now.Add(-time.Minute).Unix()))), 401},
		{"nbf in the future", sign(t, "HS256", good(set("nbf", now.Add(time.Minute).Unix()))), 401},
		{"iat in the future", sign(t, "HS256", good(set("iat", now.Add(time.Minute).Unix()))), 401},
		{"no exp", sign(t, "HS256", good(set("exp", nil))), 401},
		{"exp not a number", sign(t, "HS256", good(set("exp", "tomorrow"))), 401},
		{"wrong issuer", sign(t, "HS256", good(set("iss", "https://evil.test"))), 401},
		{"wrong audience", sign(t, "HS256", good(set("aud", "other"))), 401},
		{"unknown kid", testkit.SignKid(t, "RS256", "no-such-kid", strangerKey, good(nil)), 401},
		{"kid of the set, key of a stranger", testkit.SignKid(t, "RS256", "set-key", strangerKey, good(nil)), 401},
		{"signed by a key no source holds", signWith(t, "RS256", strangerKey, good(nil)), 401},
		{"bad base64", "e30.!!!.e30", 401},
		{"thousands of dots", strings.Repeat(".", 5000), 401},
		{"100 KB token", strings.Repeat("A", 100<<10) + ".e30.e30", 401},
		{"wrong signature", resign(sign(t, "HS256", good(nil)), "AAAA"), 401},
		{"tampered claims", tamper(sign(t, "HS256", good(nil))), 401},
		{"role claim lacks admin", sign(t, "HS256", good(set("role", "user"))), 403},
		{"no role claim", sign(t, "HS256", good(set("role", nil))), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := call(t, tc, request{method: "GET", path: "/h/accounts/sessions", token: tt.token})
			took := time.Since(start)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			p := r.problem(t)
			if len(tt.token) > 16 && strings.Contains(string(r.body), tt.token[len(tt.token)-16:]) {
				t.Errorf("the body echoes the token")
			}
			if tt.status == 403 && (p.Type != kindForbidden.typeURI() || strings.Contains(p.Detail, "user")) {
				t.Errorf("403 problem %+v", p)
			}
			t.Logf("%d in %s", r.status, took)
		})
	}

	// A cached token is still held to its exp.
	short := sign(t, "HS256", good(set("exp", now.Add(time.Minute).Unix())))
	if got := call(t, tc, request{method: "GET", path: "/h/accounts/sessions", token: short}).status; got != 200 {
		t.Fatalf("short-lived token: %d", got)
	}
	advanceClock(t, 2*time.Minute)
	if got := call(t, tc, request{method: "GET", path: "/h/accounts/sessions", token: short}).status; got != 401 {
		t.Fatalf("cached token after its exp: %d, want 401", got)
	}
}
