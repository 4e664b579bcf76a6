package jwtauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestCheckJWKSURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://issuer.example/.well-known/jwks.json": true,
		"http://127.0.0.1:8080/jwks":                   true,
		"http://localhost/jwks":                        true,
		"http://[::1]:1/jwks":                          true,
		"http://issuer.example/jwks":                   false,
		"ftp://issuer.example/jwks":                    false,
		"/jwks":                                        false,
		"issuer.example":                               false,
	} {
		if err := checkJWKSURL(raw); (err == nil) != ok {
			t.Errorf("%s: %v, want ok=%v", raw, err, ok)
		}
	}
	u, _ := url.Parse("https://user:pass@issuer.example/jwks?token=abc")
	if got := redactURL(u); got != "https://issuer.example/jwks" {
		t.Errorf("redacted %q", got)
	}
}

// TestJWKSErrorsRedacted: a fetch error names the set without its
// credentials or query, however net/http printed the URL.
func TestJWKSErrorsRedacted(t *testing.T) {
	raw := "https://user:pass@issuer.example/jwks?token=abc"
	u, _ := url.Parse(raw)
	s := &jwksSource{url: raw, redacted: redactURL(u)}
	for _, err := range []error{
		fmt.Errorf(`Get "https://user:***@issuer.example/jwks?token=abc": dial tcp: refused`),
		fmt.Errorf(`Get "%s": dial tcp: refused`, raw),
	} {
		got := s.redact(err)
		if strings.Contains(got, "user") || strings.Contains(got, "pass") || strings.Contains(got, "token=abc") || !strings.Contains(got, "https://issuer.example/jwks") {
			t.Errorf("redacted %q", got)
		}
	}
	if err := checkJWKSURL("http://user:pass@issuer.example/jwks"); err == nil || strings.Contains(err.Error(), "pass") {
		t.Errorf("load error %v", err)
	}
}

// TestJWKSKidSelectionAndRotation: a kid selects the set's key, whose type
// and JWK alg must fit the token; a rotated set is fetched again (once) for
// the new kid, and the retired key's token then fails, cached or not.
func TestJWKSKidSelectionAndRotation(t *testing.T) {
	rsa1, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t,
		testkit.JWK{KID: "rsa-1", ALG: jwkset.AlgRS256, Key: &rsa1.PublicKey},
		testkit.JWK{KID: "ec-1", Key: &ec1.PublicKey})
	v, obs := jwksVerifier(t, nil, srv.URL)
	afterStart := srv.Fetches.Load()
	if afterStart != 1 || obs.fetchesOK.Load() != 1 {
		t.Fatalf("%d fetches at start (%d reported ok), want 1", afterStart, obs.fetchesOK.Load())
	}

	claims := claimsFor("kid-user")
	rsaToken := testkit.SignKid(t, "RS256", "rsa-1", rsa1, claims)
	for name, tt := range map[string]struct {
		token string
		want  bool
	}{
		"rsa kid":                    {rsaToken, true},
		"ec kid, JWK without alg":    {testkit.SignKid(t, "ES256", "ec-1", ec1, claims), true},
		"static secret still works":  {tokenFor(t, "kid-user"), true},
		"JWK alg RS256, token PS256": {testkit.SignKid(t, "PS256", "rsa-1", rsa1, claims), false},
		"kid of an RSA key, ES256":   {testkit.SignKid(t, "ES256", "rsa-1", ec1, claims), false},
		"right kid, other key":       {testkit.SignKid(t, "RS256", "rsa-1", rsa2, claims), false},
		"RS256 on the EC kid":        {testkit.SignKid(t, "RS256", "ec-1", rsa1, claims), false},
		"HS256 with a kid":           {testkit.SignKid(t, "HS256", "rsa-1", []byte(testSecret), claims), true},
	} {
		if got := accepted(t, v, tt.token); got != tt.want {
			t.Errorf("%s: accepted %v, want %v", name, got, tt.want)
		}
	}
	if got := srv.Fetches.Load(); got != afterStart {
		t.Errorf("known kids caused %d fetches", got-afterStart)
	}
	// A JWK without alg leaves the check to the key's type.
	if _, e := verifyToken(v, testkit.SignKid(t, "RS256", "ec-1", rsa1, claims)); e == nil || e.Reason != "key_type" {
		t.Errorf("RS256 token on the EC kid: %v, want key_type", e)
	}

	srv.Serve(t, testkit.JWK{KID: "rsa-2", ALG: jwkset.AlgRS256, Key: &rsa2.PublicKey})
	if !accepted(t, v, testkit.SignKid(t, "RS256", "rsa-2", rsa2, claims)) {
		t.Fatal("token of the new key refused")
	}
	if got := srv.Fetches.Load(); got != afterStart+1 {
		t.Errorf("rotation took %d fetches, want 1", got-afterStart)
	}
	if accepted(t, v, rsaToken) {
		t.Error("token of the rotated-out key accepted")
	}
}

// TestJWKSUnknownKidBurst: many tokens with unknown kids at once cause at
// most one fetch per refetch interval, and none waits long.
func TestJWKSUnknownKidBurst(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "known", ALG: jwkset.AlgRS256, Key: &key.PublicKey})
	v, _ := jwksVerifier(t, nil, srv.URL)
	start := srv.Fetches.Load()

	const burst = 50
	var wg sync.WaitGroup
	refused := make([]*Error, burst)
	began := time.Now()
	for i := range burst {
		wg.Go(func() {
			_, refused[i] = verifyToken(v, testkit.SignKid(t, "RS256", fmt.Sprintf("unknown-%d", i), key, claimsFor("burst")))
		})
	}
	wg.Wait()
	took := time.Since(began)
	for i, e := range refused {
		if e == nil || e.Reason != "unknown_key" {
			t.Errorf("token %d: %v, want unknown_key", i, e)
		}
	}
	fetched := srv.Fetches.Load() - start
	t.Logf("%d unknown-kid tokens: %d fetches in %s", burst, fetched, took)
	if fetched > 1 {
		t.Errorf("%d fetches for the burst, want at most 1 per interval", fetched)
	}
	if !accepted(t, v, testkit.SignKid(t, "RS256", "known", key, claimsFor("burst"))) {
		t.Error("known kid refused after the burst")
	}
	if got := srv.Fetches.Load() - start; got != fetched {
		t.Error("a known kid caused a fetch")
	}
}

// TestJWKSUnreachableAtStart: the verifier is built anyway, the other key
// sources work, the failure is counted, logged once as an error (without the
// URL's credentials) and shown, and the set is picked up when it can be
// fetched.
func TestJWKSUnreachableAtStart(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "late", ALG: jwkset.AlgRS256, Key: &key.PublicKey})
	srv.Fail(true)
	core, logs := observer.New(zap.DebugLevel)
	withCredentials := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "?token=querysecret"
	v, obs := loggedJWKSVerifier(t, zap.New(core), nil, withCredentials)
	if obs.fetchErrors.Load() < 1 {
		t.Error("the failed fetch was not reported")
	}
	if st := v.JWKS(); len(st) != 1 || st[0].Loaded || st[0].LastError == "" || !st[0].LastFetch.IsZero() {
		t.Errorf("status while down: %+v", st)
	}
	kidToken := testkit.SignKid(t, "RS256", "late", key, claimsFor("late-user"))
	if !accepted(t, v, tokenFor(t, "late-user")) {
		t.Fatal("static secret refused while the JWKS is down")
	}
	if accepted(t, v, kidToken) {
		t.Fatal("kid token accepted while the JWKS is down")
	}
	srv.Fail(false)
	deadline := time.Now().Add(15 * time.Second)
	for !accepted(t, v, kidToken) {
		if time.Now().After(deadline) {
			t.Fatalf("the JWKS was not picked up after it came back (%d fetches)", srv.Fetches.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := v.JWKS(); !st[0].Loaded || st[0].Keys != 1 || st[0].LastFetch.IsZero() {
		t.Errorf("status once fetched: %+v", st)
	}
	var errorsLogged, recovered int
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, "hunter2") || strings.Contains(line, "querysecret") {
			t.Errorf("the log shows the URL's secrets: %s", line)
		}
		switch {
		case e.Level == zap.ErrorLevel && strings.HasPrefix(e.Message, "JWKS could not be fetched"):
			errorsLogged++
		case e.Level == zap.InfoLevel && e.Message == "JWKS fetched after earlier failures":
			recovered++
		case e.Level == zap.WarnLevel:
			t.Errorf("a warning about keys fetched before, while none were: %s", line)
		}
	}
	if errorsLogged != 1 || recovered != 1 {
		t.Errorf("%d errors and %d recoveries logged, want 1 each: %v", errorsLogged, recovered, logs.All())
	}
}

// TestJWKSPeriodicRefresh: the set is fetched again every jwks_refresh, and a
// key added to it is used without any unknown-kid refetch.
func TestJWKSPeriodicRefresh(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &k1.PublicKey})
	v, obs := jwksVerifier(t, func(c *Config) {
		c.JWKSRefresh = caddy.Duration(100 * time.Millisecond)
	}, srv.URL)
	srv.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &k1.PublicKey},
		testkit.JWK{KID: "k2", ALG: jwkset.AlgRS256, Key: &k2.PublicKey})
	deadline := time.Now().Add(10 * time.Second)
	for srv.Fetches.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d fetches in 10s with jwks_refresh 100ms", srv.Fetches.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !accepted(t, v, testkit.SignKid(t, "RS256", "k2", k2, claimsFor("refresh"))) {
		t.Fatal("key added to the set refused")
	}
	if obs.fetchesOK.Load() < 3 {
		t.Errorf("%d fetches reported ok", obs.fetchesOK.Load())
	}
}

// TestJWKSChangeEmptiesCache: a token cached under a key stops working once
// a refresh drops that key.
func TestJWKSChangeEmptiesCache(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := testkit.NewJWKSServer(t)
	srv.Serve(t, testkit.JWK{KID: "k", ALG: jwkset.AlgRS256, Key: &key.PublicKey})
	v, obs := jwksVerifier(t, func(c *Config) {
		c.JWKSRefresh = caddy.Duration(50 * time.Millisecond)
	}, srv.URL)
	tok := testkit.SignKid(t, "RS256", "k", key, claimsFor("cached"))
	if !accepted(t, v, tok) || !accepted(t, v, tok) || obs.hits.Load() != 1 {
		t.Fatalf("token not served from the cache: %d hits", obs.hits.Load())
	}
	srv.Serve(t)
	deadline := time.Now().Add(10 * time.Second)
	for accepted(t, v, tok) {
		if time.Now().After(deadline) {
			t.Fatal("a token of a dropped key is still accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJWKSSetsShareOneClient: the sets of a config are one jwkset client. A
// kid is found in whichever set holds it; a set down at start does not hold
// up the others and is picked up later; and the unknown-kid refetch is one
// limiter for all the sets: once it has fetched them again for a rotated
// kid, a burst of unknown kids in the same interval fetches none of them.
func TestJWKSSetsShareOneClient(t *testing.T) {
	keyA1, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyA2, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyD, _ := rsa.GenerateKey(rand.Reader, 2048)
	srvA, srvB, srvDown := testkit.NewJWKSServer(t), testkit.NewJWKSServer(t), testkit.NewJWKSServer(t)
	srvA.Serve(t, testkit.JWK{KID: "a1", ALG: jwkset.AlgRS256, Key: &keyA1.PublicKey})
	srvB.Serve(t, testkit.JWK{KID: "b1", ALG: jwkset.AlgES256, Key: &keyB.PublicKey})
	srvDown.Serve(t, testkit.JWK{KID: "d1", ALG: jwkset.AlgRS256, Key: &keyD.PublicKey})
	srvDown.Fail(true)
	v, _ := jwksVerifier(t, nil, srvA.URL, srvB.URL, srvDown.URL, srvA.URL)

	st := v.JWKS()
	if len(st) != 3 || st[0].URL != srvA.URL || st[1].URL != srvB.URL || st[2].URL != srvDown.URL {
		t.Fatalf("status %+v, want the three sets in the config's order, once each", st)
	}
	if !st[0].Loaded || !st[1].Loaded || st[2].Loaded || st[2].LastError == "" {
		t.Errorf("status at start %+v", st)
	}
	claims := claimsFor("sets")
	if !accepted(t, v, testkit.SignKid(t, "RS256", "a1", keyA1, claims)) || !accepted(t, v, testkit.SignKid(t, "ES256", "b1", keyB, claims)) {
		t.Fatal("a kid of one of the sets refused")
	}
	fetchesAB := func() int64 { return srvA.Fetches.Load() + srvB.Fetches.Load() }
	if a, b := srvA.Fetches.Load(), srvB.Fetches.Load(); a != 1 || b != 1 {
		t.Fatalf("fetches at start: A %d, B %d; want 1 each", a, b)
	}

	srvA.Serve(t, testkit.JWK{KID: "a2", ALG: jwkset.AlgRS256, Key: &keyA2.PublicKey})
	if !accepted(t, v, testkit.SignKid(t, "RS256", "a2", keyA2, claims)) {
		t.Fatal("token of the rotated key refused")
	}
	if got := srvA.Fetches.Load(); got != 2 {
		t.Errorf("A fetched %d times, want 2", got)
	}
	afterRotation := fetchesAB()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if accepted(t, v, testkit.SignKid(t, "RS256", fmt.Sprintf("unknown-%d", i), keyA2, claims)) {
				t.Errorf("unknown kid %d accepted", i)
			}
		})
	}
	wg.Wait()
	if got := fetchesAB() - afterRotation; got != 0 {
		t.Errorf("the burst fetched the sets %d more times, want none: one limiter for all", got)
	}

	srvDown.Fail(false)
	dToken := testkit.SignKid(t, "RS256", "d1", keyD, claims)
	deadline := time.Now().Add(15 * time.Second)
	for !accepted(t, v, dToken) {
		if time.Now().After(deadline) {
			t.Fatalf("the set down at start was not picked up (%d fetches)", srvDown.Fetches.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := v.JWKS(); !st[2].Loaded || st[2].Keys != 1 {
		t.Errorf("status once the set is back: %+v", st[2])
	}
}
