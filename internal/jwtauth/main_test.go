package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
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

// testKeys are generated once per test binary; their public halves are
// written to PEM files for the configs.
var testKeys struct {
	rsa     *rsa.PrivateKey
	ec256   *ecdsa.PrivateKey
	ec384   *ecdsa.PrivateKey
	ec521   *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
	rsaPEM  string // file with the RSA public key
	ecPEM   string // file with the three EC public keys
	edPEM   string // file with the Ed25519 public key
	privPEM string // file with the RSA private key (must be refused as a key)
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jwtauth-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("OWNID_TEST_SECRET", testSecret)
	makeTestKeys(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func makeTestKeys(dir string) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var err error
	testKeys.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	testKeys.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	testKeys.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	testKeys.ec521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	_, testKeys.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)

	pubPEM := func(keys ...any) []byte {
		var out []byte
		for _, k := range keys {
			der, err := x509.MarshalPKIXPublicKey(k)
			must(err)
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
		}
		return out
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		must(os.WriteFile(p, data, 0o600))
		return p
	}
	testKeys.rsaPEM = write("rsa.pem", pubPEM(&testKeys.rsa.PublicKey))
	testKeys.ecPEM = write("ec.pem", pubPEM(&testKeys.ec256.PublicKey, &testKeys.ec384.PublicKey, &testKeys.ec521.PublicKey))
	testKeys.edPEM = write("ed.pem", pubPEM(testKeys.ed.Public()))
	testKeys.privPEM = write("rsa-private.pem", pem.EncodeToMemory(&pem.Block{
		Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testKeys.rsa),
	}))
}

// signingKey returns the private key that signs alg in these tests.
func signingKey(alg string) any {
	switch algorithms[alg] {
	case keyHMAC:
		return []byte(testSecret)
	case keyRSA:
		return testKeys.rsa
	case keyP256:
		return testKeys.ec256
	case keyP384:
		return testKeys.ec384
	case keyP521:
		return testKeys.ec521
	case keyEd25519:
		return testKeys.ed
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

// jwksServer is a real HTTP server for a JWK Set that the test can change,
// break and count.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	failing bool
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, failing := s.body, s.failing
		s.mu.Unlock()
		if failing {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

type testJWK struct {
	kid string
	alg jwkset.ALG // "" leaves alg out of the JWK
	key any        // the public key
}

// serve replaces the set the server answers with.
func (s *jwksServer) serve(t *testing.T, keys ...testJWK) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body, s.failing = body, false
	s.mu.Unlock()
}

func (s *jwksServer) fail(failing bool) {
	s.mu.Lock()
	s.failing = failing
	s.mu.Unlock()
}

// signKid signs claims with key under alg, naming kid in the header.
func signKid(t *testing.T, alg, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
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
