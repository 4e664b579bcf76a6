package ownidsessions

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
)

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

func jwksConfig(jwksURL, extra string) string {
	return fmt.Sprintf(`
{
`+testGlobals+`
	grace_period 1ns
}
http://localhost:9080 {
	ownid_sessions {
		jwt {
			alg HS256 RS256 PS256 ES256
			secret {env.OWNID_TEST_SECRET}
			jwks %s
			jwks_refetch_interval 1h
			%s
		}
	}
}
`, jwksURL, extra)
}

func listStatus(t *testing.T, tc *caddytest.Tester, token string) int {
	t.Helper()
	return call(t, tc, request{method: "GET", path: "/jwks/accounts/sessions", token: token}).status
}

func TestJWKSKidSelectionAndRotation(t *testing.T) {
	rsa1, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := newJWKSServer(t)
	srv.serve(t,
		testJWK{kid: "rsa-1", alg: jwkset.AlgRS256, key: &rsa1.PublicKey},
		testJWK{kid: "ec-1", key: &ec1.PublicKey})

	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, ""), "caddyfile")
	afterStart := srv.fetches.Load()
	if afterStart != 1 {
		t.Fatalf("%d fetches at start, want 1", afterStart)
	}

	claims := claimsFor("kid-user")
	rsaToken := signKid(t, "RS256", "rsa-1", rsa1, claims)
	for name, tt := range map[string]struct {
		token string
		want  int
	}{
		"rsa kid":                    {rsaToken, 200},
		"ec kid, JWK without alg":    {signKid(t, "ES256", "ec-1", ec1, claims), 200},
		"static secret still works":  {tokenFor(t, "kid-user"), 200},
		"JWK alg RS256, token PS256": {signKid(t, "PS256", "rsa-1", rsa1, claims), 401},
		"kid of an RSA key, ES256":   {signKid(t, "ES256", "rsa-1", ec1, claims), 401},
		"right kid, other key":       {signKid(t, "RS256", "rsa-1", rsa2, claims), 401},
		"RS256 on the EC kid":        {signKid(t, "RS256", "ec-1", rsa1, claims), 401},
		"HS256 with a kid":           {signKid(t, "HS256", "rsa-1", []byte(testSecret), claims), 200},
	} {
		if got := listStatus(t, tc, tt.token); got != tt.want {
			t.Errorf("%s: %d, want %d", name, got, tt.want)
		}
	}
	if got := srv.fetches.Load(); got != afterStart {
		t.Errorf("known kids caused %d fetches", got-afterStart)
	}

	// Rotation: the set now holds only rsa-2. A token for the new kid makes
	// the set be fetched again (once); the token of the retired key then
	// fails, even though it verified, and was cached, before.
	srv.serve(t, testJWK{kid: "rsa-2", alg: jwkset.AlgRS256, key: &rsa2.PublicKey})
	if got := listStatus(t, tc, signKid(t, "RS256", "rsa-2", rsa2, claims)); got != 200 {
		t.Fatalf("token of the new key: %d", got)
	}
	if got := srv.fetches.Load(); got != afterStart+1 {
		t.Errorf("rotation took %d fetches, want 1", got-afterStart)
	}
	if got := listStatus(t, tc, rsaToken); got != 401 {
		t.Errorf("token of the rotated-out key: %d, want 401", got)
	}
}

// TestJWKSUnknownKidBurst: many requests with unknown kids at once cause at
// most one fetch per refetch interval, and none waits long.
func TestJWKSUnknownKidBurst(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := newJWKSServer(t)
	srv.serve(t, testJWK{kid: "known", alg: jwkset.AlgRS256, key: &key.PublicKey})
	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, ""), "caddyfile")
	start := srv.fetches.Load()

	const burst = 50
	var wg sync.WaitGroup
	statuses := make([]int, burst)
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := signKid(t, "RS256", fmt.Sprintf("unknown-%d", i), key, claimsFor("burst"))
			req, _ := http.NewRequest("GET", base+"/jwks/accounts/sessions", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := tc.Client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 401 {
			t.Errorf("request %d: %d, want 401", i, s)
		}
	}
	fetched := srv.fetches.Load() - start
	t.Logf("JWKS fetches caused by %d unknown-kid requests: %d", burst, fetched)
	if fetched > 1 {
		t.Errorf("%d fetches for the burst, want at most 1 per interval", fetched)
	}
	// The known kid still works, without a fetch.
	if got := listStatus(t, tc, signKid(t, "RS256", "known", key, claimsFor("burst"))); got != 200 {
		t.Errorf("known kid after the burst: %d", got)
	}
	if got := srv.fetches.Load() - start; got != fetched {
		t.Errorf("a known kid caused a fetch")
	}
}

// TestJWKSUnreachableAtStart: Caddy starts anyway, other key sources work,
// and the set is picked up when it can be fetched.
func TestJWKSUnreachableAtStart(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := newJWKSServer(t)
	srv.serve(t, testJWK{kid: "late", alg: jwkset.AlgRS256, key: &key.PublicKey})
	srv.fail(true)

	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, ""), "caddyfile")
	kidToken := signKid(t, "RS256", "late", key, claimsFor("late-user"))
	if got := listStatus(t, tc, tokenFor(t, "late-user")); got != 200 {
		t.Fatalf("static secret while the JWKS is down: %d", got)
	}
	if got := listStatus(t, tc, kidToken); got != 401 {
		t.Fatalf("kid token while the JWKS is down: %d, want 401", got)
	}
	srv.fail(false)
	deadline := time.Now().Add(15 * time.Second)
	for listStatus(t, tc, kidToken) != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the JWKS was not picked up after it came back (%d fetches)", srv.fetches.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJWKSPeriodicRefresh: the set is fetched again every jwks_refresh, and a
// key added to it is used without any unknown-kid refetch.
func TestJWKSPeriodicRefresh(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := newJWKSServer(t)
	srv.serve(t, testJWK{kid: "k1", alg: jwkset.AlgRS256, key: &k1.PublicKey})
	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, "jwks_refresh 100ms"), "caddyfile")
	srv.serve(t, testJWK{kid: "k1", alg: jwkset.AlgRS256, key: &k1.PublicKey},
		testJWK{kid: "k2", alg: jwkset.AlgRS256, key: &k2.PublicKey})
	deadline := time.Now().Add(10 * time.Second)
	for srv.fetches.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d fetches in 10s with jwks_refresh 100ms", srv.fetches.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := listStatus(t, tc, signKid(t, "RS256", "k2", k2, claimsFor("refresh"))); got != 200 {
		t.Fatalf("key added to the set: %d", got)
	}
}
