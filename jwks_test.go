package ownidsessions

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
)

type testJWK struct {
	kid string
	alg jwkset.ALG // "" leaves alg out of the JWK
	key any        // the public key
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
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t,
		testkit.JWK{KID: "rsa-1", ALG: jwkset.AlgRS256, Key: &rsa1.PublicKey},
		testkit.JWK{KID: "ec-1", Key: &ec1.PublicKey})

	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, ""), "caddyfile")
	afterStart := srv.Fetches.Load()
	if afterStart != 1 {
		t.Fatalf("%d fetches at start, want 1", afterStart)
	}

	claims := claimsFor("kid-user")
	rsaToken := testkit.SignKid(t, "RS256", "rsa-1", rsa1, claims)
	for name, tt := range map[string]struct {
		token string
		want  int
	}{
		"rsa kid":                    {rsaToken, 200},
		"ec kid, JWK without alg":    {testkit.SignKid(t, "ES256", "ec-1", ec1, claims), 200},
		"static secret still works":  {tokenFor(t, "kid-user"), 200},
		"JWK alg RS256, token PS256": {testkit.SignKid(t, "PS256", "rsa-1", rsa1, claims), 401},
		"kid of an RSA key, ES256":   {testkit.SignKid(t, "ES256", "rsa-1", ec1, claims), 401},
		"right kid, other key":       {testkit.SignKid(t, "RS256", "rsa-1", rsa2, claims), 401},
		"RS256 on the EC kid":        {testkit.SignKid(t, "RS256", "ec-1", rsa1, claims), 401},
		"HS256 with a kid":           {testkit.SignKid(t, "HS256", "rsa-1", []byte(testSecret), claims), 200},
	} {
		if got := listStatus(t, tc, tt.token); got != tt.want {
			t.Errorf("%s: %d, want %d", name, got, tt.want)
		}
	}
	if got := srv.Fetches.Load(); got != afterStart {
		t.Errorf("known kids caused %d fetches", got-afterStart)
	}

	// Rotation: the set now holds only rsa-2. A token for the new kid makes
	// the set be fetched again (once); the token of the retired key then
	// fails, even though it verified, and was cached, before.
	srv.Serve(t, testkit.JWK{KID: "rsa-2", ALG: jwkset.AlgRS256, Key: &rsa2.PublicKey})
	if got := listStatus(t, tc, testkit.SignKid(t, "RS256", "rsa-2", rsa2, claims)); got != 200 {
		t.Fatalf("token of the new key: %d", got)
	}
	if got := srv.Fetches.Load(); got != afterStart+1 {
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
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "known", ALG: jwkset.AlgRS256, Key: &key.PublicKey})
	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, ""), "caddyfile")
	start := srv.Fetches.Load()

	const burst = 50
	var wg sync.WaitGroup
	statuses := make([]int, burst)
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := testkit.SignKid(t, "RS256", fmt.Sprintf("unknown-%d", i), key, claimsFor("burst"))
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
	fetched := srv.Fetches.Load() - start
	t.Logf("JWKS fetches caused by %d unknown-kid requests: %d", burst, fetched)
	if fetched > 1 {
		t.Errorf("%d fetches for the burst, want at most 1 per interval", fetched)
	}
	// The known kid still works, without a fetch.
	if got := listStatus(t, tc, testkit.SignKid(t, "RS256", "known", key, claimsFor("burst"))); got != 200 {
		t.Errorf("known kid after the burst: %d", got)
	}
	if got := srv.Fetches.Load() - start; got != fetched {
		t.Errorf("a known kid caused a fetch")
	}
}

// TestJWKSUnreachableAtStart: Caddy starts anyway, other key sources work,
// and the set is picked up when it can be fetched.
func TestJWKSUnreachableAtStart(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "late", ALG: jwkset.AlgRS256, Key: &key.PublicKey})
	srv.Fail(true)

	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, ""), "caddyfile")
	kidToken := testkit.SignKid(t, "RS256", "late", key, claimsFor("late-user"))
	if got := listStatus(t, tc, tokenFor(t, "late-user")); got != 200 {
		t.Fatalf("static secret while the JWKS is down: %d", got)
	}
	if got := listStatus(t, tc, kidToken); got != 401 {
		t.Fatalf("kid token while the JWKS is down: %d, want 401", got)
	}
	srv.Fail(false)
	deadline := time.Now().Add(15 * time.Second)
	for listStatus(t, tc, kidToken) != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the JWKS was not picked up after it came back (%d fetches)", srv.Fetches.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJWKSPeriodicRefresh: the set is fetched again every jwks_refresh, and a
// key added to it is used without any unknown-kid refetch.
func TestJWKSPeriodicRefresh(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &k1.PublicKey})
	tc := caddytest.NewTester(t)
	tc.InitServer(jwksConfig(srv.URL, "jwks_refresh 100ms"), "caddyfile")
	srv.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &k1.PublicKey},
		testkit.JWK{KID: "k2", ALG: jwkset.AlgRS256, Key: &k2.PublicKey})
	deadline := time.Now().Add(10 * time.Second)
	for srv.Fetches.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d fetches in 10s with jwks_refresh 100ms", srv.Fetches.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := listStatus(t, tc, testkit.SignKid(t, "RS256", "k2", k2, claimsFor("refresh"))); got != 200 {
		t.Fatalf("key added to the set: %d", got)
	}
}
