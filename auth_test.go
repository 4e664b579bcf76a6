package ownidsessions

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

var allAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// testVerifier accepts every algorithm with the test keys.
func testVerifier(t testing.TB, mutate func(*JWTConfig)) *verifier {
	t.Helper()
	cfg := &JWTConfig{
		Algorithms: allAlgorithms,
		Secret:     testSecret,
		Keys:       []string{testKeys.rsaPEM, testKeys.ecPEM, testKeys.edPEM},
	}
	if mutate != nil {
		mutate(cfg)
	}
	v, err := newVerifier(cfg, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testEnv is what a verifier gets from a config in these tests.
func testEnv(t testing.TB) verifierEnv {
	ctx, _ := newTestContext(t)
	return verifierEnv{ctx: ctx, repl: caddy.NewReplacer(), now: testNow, logger: zap.NewNop()}
}

func verifyToken(v *verifier, token string) (*identity, *problem) {
	r := httptest.NewRequest("GET", "/accounts/sessions", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return v.verify(r)
}

func TestVerifyEveryAlgorithm(t *testing.T) {
	v := testVerifier(t, nil)
	for _, alg := range allAlgorithms {
		id, p := verifyToken(v, sign(t, alg, claimsFor("alice")))
		if p != nil {
			t.Errorf("%s: %v", alg, p)
			continue
		}
		if id.subject != "alice" {
			t.Errorf("%s: sub %q", alg, id.subject)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	v := testVerifier(t, func(c *JWTConfig) {
		c.Issuers = []string{"https://issuer.example", "https://other.example"}
		c.Audiences = []string{"sessions"}
		leeway := caddy.Duration(10 * time.Second)
		c.Leeway = &leeway
	})
	good := func() jwt.MapClaims {
		c := claimsFor("alice")
		c["iss"] = "https://other.example"
		c["aud"] = []string{"x", "sessions"}
		return c
	}
	if _, p := verifyToken(v, sign(t, "HS256", good())); p != nil {
		t.Fatalf("good token refused: %v", p)
	}
	now := testNow()
	with := func(k string, val any) jwt.MapClaims {
		c := good()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	// Algorithm confusion: an HS256 token keyed with the RSA public key PEM.
	hsRSA, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good()).SignedString(mustRead(t, testKeys.rsaPEM))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// A key the verifier does not hold, as after a rotation.
	retired, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, good()).SignedString(retired)
	tests := map[string]struct {
		token  string
		detail string
	}{
		"expired":             {sign(t, "HS256", with("exp", now.Add(-20*time.Second).Unix())), "expired"},
		"no exp":              {sign(t, "HS256", with("exp", nil)), "required claim"},
		"nbf beyond leeway":   {sign(t, "HS256", with("nbf", now.Add(20*time.Second).Unix())), "not valid yet"},
		"iat beyond leeway":   {sign(t, "HS256", with("iat", now.Add(20*time.Second).Unix())), "issued in the future"},
		"wrong issuer":        {sign(t, "HS256", with("iss", "https://evil.example")), "issuer"},
		"no issuer":           {sign(t, "HS256", with("iss", nil)), "issuer"},
		"wrong audience":      {sign(t, "HS256", with("aud", "other")), "audience"},
		"no audience":         {sign(t, "HS256", with("aud", nil)), "required claim"},
		"alg none":            {none, "signature"},
		"hs256 with RSA PEM":  {hsRSA, "signature"},
		"unknown RSA key":     {rotated, "signature"},
		"bad base64 header":   {"!!!.e30.e30", "malformed"},
		"bad base64 sig":      {resign(sign(t, "HS256", good()), "!!!"), "malformed"},
		"header without alg":  {"e30.e30.e30", "cannot be verified"},
		"not json":            {"YWJj.YWJj.YWJj", "malformed"},
		"many dots":           {strings.Repeat(".", 5000), "compact"},
		"huge token":          {strings.Repeat("a", 100<<10) + ".a.a", "too large"},
		"tampered payload":    {tamper(sign(t, "HS256", good())), "signature"},
		"tampered ES256":      {tamper(sign(t, "ES256", good())), "signature"},
		"ES256 sig for ES384": {relabel(t, sign(t, "ES384", good()), "ES256"), "signature"},
	}
	for name, tt := range tests {
		_, p := verifyToken(v, tt.token)
		if p == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if p.kind != kindInvalidToken || !strings.Contains(p.detail, tt.detail) {
			t.Errorf("%s: %v, want invalid-token about %q", name, p, tt.detail)
		}
		if strings.Contains(p.detail, tt.token[:min(len(tt.token), 20)]) && len(tt.token) > 20 {
			t.Errorf("%s: the detail quotes the token", name)
		}
	}
	// Within leeway is fine.
	if _, p := verifyToken(v, sign(t, "HS256", with("exp", now.Add(-5*time.Second).Unix()))); p != nil {
		t.Errorf("expired within leeway refused: %v", p)
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

// relabel puts another alg in a token's header, keeping payload and signature.
func relabel(t *testing.T, token, alg string) string {
	parts := strings.Split(token, ".")
	h, _ := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims{}).SigningString()
	parts[0] = strings.Split(h, ".")[0]
	return strings.Join(parts, ".")
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header  []string
		token   string
		kind    problemKind
		problem bool
	}{
		{header: []string{"Bearer a.b.c"}, token: "a.b.c"},
		{header: []string{"bearer a.b.c"}, token: "a.b.c"},
		{header: []string{"BEARER   a.b.c  "}, token: "a.b.c"},
		{header: nil, kind: kindMissingToken, problem: true},
		{header: []string{"Bearer a.b.c", "Bearer a.b.c"}, kind: kindInvalidToken, problem: true},
		{header: []string{"Basic a.b.c"}, kind: kindInvalidToken, problem: true},
		{header: []string{"Bearer"}, kind: kindInvalidToken, problem: true},
		{header: []string{"Bearer a.b"}, kind: kindInvalidToken, problem: true},
		{header: []string{"Bearer " + strings.Repeat("x", maxAuthorizationHeader)}, kind: kindInvalidToken, problem: true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		for _, h := range tt.header {
			r.Header.Add("Authorization", h)
		}
		tok, p := bearerToken(r)
		if tt.problem {
			if p == nil || p.kind != tt.kind {
				t.Errorf("%q: got %q, %v; want %v", tt.header, tok, p, problemKinds[tt.kind].slug)
			}
			continue
		}
		if p != nil || tok != tt.token {
			t.Errorf("%q: got %q, %v", tt.header, tok, p)
		}
	}
}

func TestNewVerifierConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a pem"), 0o600)
	tests := map[string]struct {
		cfg  JWTConfig
		want string
	}{
		"no alg":             {JWTConfig{Secret: testSecret}, "jwt alg: at least one"},
		"unknown alg":        {JWTConfig{Algorithms: []string{"HS257"}, Secret: testSecret}, `jwt alg: unknown algorithm "HS257"`},
		"none":               {JWTConfig{Algorithms: []string{"none"}, Secret: testSecret}, "jwt alg: 'none' is never accepted"},
		"no key source":      {JWTConfig{Algorithms: []string{"HS256"}}, "jwt: no key source"},
		"short secret":       {JWTConfig{Algorithms: []string{"HS256"}, Secret: "short"}, "jwt secret: must be at least 32 bytes"},
		"unset env secret":   {JWTConfig{Algorithms: []string{"HS256"}, Secret: "{env.OWNID_NOT_SET_ANYWHERE}"}, "jwt secret"},
		"alg without key":    {JWTConfig{Algorithms: []string{"HS256", "RS256"}, Secret: testSecret}, "jwt alg: RS256 needs an RSA key"},
		"key without alg":    {JWTConfig{Algorithms: []string{"HS256"}, Secret: testSecret, Keys: []string{testKeys.rsaPEM}}, "jwt alg: an RSA key is configured but no allowed algorithm uses it"},
		"curve mismatch":     {JWTConfig{Algorithms: []string{"ES256"}, Keys: []string{testKeys.edPEM}}, "ES256 needs an EC P-256 key"},
		"missing key file":   {JWTConfig{Algorithms: []string{"RS256"}, Keys: []string{filepath.Join(dir, "nope.pem")}}, "jwt key:"},
		"not pem":            {JWTConfig{Algorithms: []string{"RS256"}, Keys: []string{garbage}}, "no PEM public key"},
		"private key":        {JWTConfig{Algorithms: []string{"RS256"}, Keys: []string{testKeys.privPEM}}, "holds a private key"},
		"negative leeway":    {JWTConfig{Algorithms: []string{"HS256"}, Secret: testSecret, Leeway: durationPtr(-time.Second)}, "jwt leeway"},
		"lowercase alg name": {JWTConfig{Algorithms: []string{"hs256"}, Secret: testSecret}, "unknown algorithm"},
	}
	for name, tt := range tests {
		_, err := newVerifier(&tt.cfg, testEnv(t))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", name, err, tt.want)
		}
	}
}

func TestSecretFromEnvironment(t *testing.T) {
	v, err := newVerifier(&JWTConfig{Algorithms: []string{"HS256"}, Secret: "{env.OWNID_TEST_SECRET}"}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, p := verifyToken(v, sign(t, "HS256", claimsFor("alice"))); p != nil {
		t.Fatalf("token signed with the environment's secret refused: %v", p)
	}
}

func durationPtr(d time.Duration) *caddy.Duration {
	c := caddy.Duration(d)
	return &c
}

// BenchmarkVerify: one token verification per algorithm with the cache off,
// on but missing (emptied each time: hash, verify and insert), and a hit.
func BenchmarkVerify(b *testing.B) {
	off := 0
	noCache := testVerifier(b, func(c *JWTConfig) { c.CacheSize = &off })
	cached := testVerifier(b, nil)
	for _, alg := range []string{"HS256", "RS256", "PS256", "ES256", "EdDSA"} {
		r := httptest.NewRequest("PUT", "/accounts/sessions/x", nil)
		r.Header.Set("Authorization", "Bearer "+sign(b, alg, claimsFor("bench")))
		for _, mode := range []string{"cache-off", "cache-miss", "cache-hit"} {
			v := cached
			if mode == "cache-off" {
				v = noCache
			}
			b.Run(alg+"/"+mode, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if mode == "cache-miss" {
						v.cache.clear()
					}
					if _, p := v.verify(r); p != nil {
						b.Fatal(p)
					}
				}
			})
		}
	}
}

// TestHostileTokens sends each kind of bad token through a real Caddy: every
// one gets 401 (403 for a failed claim rule), never a 5xx.
func TestHostileTokens(t *testing.T) {
	jwksKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	strangerKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := newJWKSServer(t)
	srv.serve(t, testJWK{kid: "set-key", alg: jwkset.AlgRS256, key: &jwksKey.PublicKey})
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
}`, testKeys.rsaPEM, testKeys.ecPEM, srv.URL), "caddyfile")

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
	confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good(nil)).SignedString(mustRead(t, testKeys.rsaPEM))

	// The valid token works, and its claims are placeholders for later
	// handlers.
	r := call(t, tc, request{method: "GET", path: "/h/accounts/sessions", token: sign(t, "RS256", good(nil))})
	if r.status != 200 || r.header.Get("X-Account") != "hostile" || r.header.Get("X-Role") != `["user","admin"]` {
		t.Fatalf("valid token: %d, X-Account %q, X-Role %q", r.status, r.header.Get("X-Account"), r.header.Get("X-Role"))
	}
	if r := call(t, tc, request{method: "GET", path: "/h/accounts/sessions", token: signKid(t, "RS256", "set-key", jwksKey, good(nil))}); r.status != 200 {
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
		{"unknown kid", signKid(t, "RS256", "no-such-kid", strangerKey, good(nil)), 401},
		{"kid of the set, key of a stranger", signKid(t, "RS256", "set-key", strangerKey, good(nil)), 401},
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
