package jwtauth

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
	"go.uber.org/zap"
)

// testClockOffset moves the time the verifiers of these tests see: the real
// time plus an offset, so expiry is tested without sleeping.
var testClockOffset atomic.Int64

func testNow() time.Time { return time.Now().Add(time.Duration(testClockOffset.Load())) }

// advanceClock moves the verifiers' time forward for the rest of the test.
func advanceClock(t testing.TB, d time.Duration) {
	testClockOffset.Add(int64(d))
	t.Cleanup(func() { testClockOffset.Add(-int64(d)) })
}

// t0 is a fixed time for the cache tests.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// testSecret is the HMAC secret of the tests, also given through the
// environment as OWNID_TEST_SECRET, as a user would.
const testSecret = "test-secret-0123456789abcdef0123456789"

// testKeys are generated once per test binary (internal/testkit).
var testKeys *testkit.Keys

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jwtauth-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("OWNID_TEST_SECRET", testSecret)
	testKeys = testkit.MakeKeys(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// signingKey returns the private key that signs alg in these tests.
func signingKey(alg string) any {
	switch algorithms[alg] {
	case keyHMAC:
		return []byte(testSecret)
	case keyRSA:
		return testKeys.RSA
	case keyP256:
		return testKeys.EC256
	case keyP384:
		return testKeys.EC384
	case keyP521:
		return testKeys.EC521
	case keyEd25519:
		return testKeys.Ed
	}
	panic("no test key for " + alg)
}

// claimsFor is a valid claim set for sub at the verifiers' time.
func claimsFor(sub string) jwt.MapClaims {
	now := testNow()
	return jwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// sign makes a token with the test key for alg; it fails the test if
// signing fails.
func sign(t testing.TB, alg string, claims jwt.MapClaims) string {
	t.Helper()
	return signWith(t, alg, signingKey(alg), claims)
}

// signWith makes a token with the given key and no kid.
func signWith(t testing.TB, alg string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims).SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", alg, err)
	}
	return tok
}

// tokenFor is a valid HS256 token for sub.
func tokenFor(t testing.TB, sub string) string {
	return sign(t, "HS256", claimsFor(sub))
}

func mustRead(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingObserver counts what a verifier reports.
type countingObserver struct {
	hits, misses, fetchesOK, fetchErrors, tooLarge atomic.Int64
}

func (o *countingObserver) CacheLookup(hit bool) {
	if hit {
		o.hits.Add(1)
	} else {
		o.misses.Add(1)
	}
}

func (o *countingObserver) JWKSFetch(result string) {
	switch result {
	case FetchOK:
		o.fetchesOK.Add(1)
	case FetchTooLarge:
		o.tooLarge.Add(1)
	default:
		o.fetchErrors.Add(1)
	}
}

// testEnv is what a verifier gets from a config in these tests: Caddy's
// replacer for {env.*}, the tests' clock, and a context that ends with the
// test.
func testEnv(t testing.TB) Env {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	repl := caddy.NewReplacer()
	return Env{
		Ctx:     ctx,
		Replace: func(s string) string { return repl.ReplaceKnown(s, "") },
		Now:     testNow,
		Logger:  zap.NewNop(),
	}
}

type testJWK struct {
	kid string
	alg jwkset.ALG // "" leaves alg out of the JWK
	key any        // the public key
}

// jwksVerifier is a verifier of HS256 (the test secret) and RS256, PS256
// and ES256 tokens from the given sets, counting what it reports.
func jwksVerifier(t *testing.T, mutate func(*Config), urls ...string) (*Verifier, *countingObserver) {
	t.Helper()
	return loggedJWKSVerifier(t, zap.NewNop(), mutate, urls...)
}

// loggedJWKSVerifier is jwksVerifier logging to logger.
func loggedJWKSVerifier(t *testing.T, logger *zap.Logger, mutate func(*Config), urls ...string) (*Verifier, *countingObserver) {
	t.Helper()
	cfg := &Config{
		Algorithms:          []string{"HS256", "RS256", "PS256", "ES256"},
		Secret:              "{env.OWNID_TEST_SECRET}",
		JWKS:                urls,
		JWKSRefetchInterval: caddy.Duration(time.Hour),
	}
	if mutate != nil {
		mutate(cfg)
	}
	obs := &countingObserver{}
	env := testEnv(t)
	env.Observer = obs
	env.Logger = logger
	v, err := New(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	return v, obs
}

// accepted says whether v takes the token; a refusal must be a 401.
func accepted(t *testing.T, v *Verifier, token string) bool {
	t.Helper()
	_, e := verifyToken(v, token)
	if e != nil && (e.Status != 401 || !e.TokenSent) {
		t.Fatalf("refusal %+v, want a 401 about the token", e)
	}
	return e == nil
}
