package ownidsessions

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
)

// discoveryServer answers an OpenID Provider configuration naming issuer
// (its own URL when nil) and jwksURI.
func discoveryServer(t *testing.T, issuer *string, jwksURI string) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		iss := srv.URL
		if issuer != nil {
			iss = *issuer
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": jwksURI})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func issuedBy(iss, sub string) jwt.MapClaims {
	c := claimsFor(sub)
	if iss != "" {
		c["iss"] = iss
	}
	return c
}

// TestProvidersEndToEnd runs three providers through a real Caddy in
// forward mode: two JWK Sets that publish the same kid under different
// keys, and an OpenID Provider found by discovery. Tokens come from the
// header, a cookie or the query; the one from the query never reaches the
// backend.
func TestProvidersEndToEnd(t *testing.T) {
	keyA, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyB, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyOP1, _ := rsa.GenerateKey(rand.Reader, 2048)
	keyOP2, _ := rsa.GenerateKey(rand.Reader, 2048)
	setA, setB, setOP := testkit.NewJWKSServer(t), testkit.NewJWKSServer(t), testkit.NewJWKSServer(t)
	setA.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &keyA.PublicKey})
	setB.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &keyB.PublicKey})
	setOP.Serve(t, testkit.JWK{KID: "op-1", ALG: jwkset.AlgRS256, Key: &keyOP1.PublicKey})
	op := discoveryServer(t, nil, setOP.URL)
	be := newBackend(t)

	tc := caddytest.NewTester(t)
	tc.InitServer(fmt.Sprintf(`
{
`+testGlobals+`
	grace_period 1ns
}
http://localhost:9080 {
	ownid_sessions {
		mode forward
		validate_responses off
		token_from header
		token_from cookie ownid_token
		token_from query access_token
		jwt a {
			alg RS256
			issuer https://a.example
			jwks %s
		}
		jwt b {
			alg RS256
			issuer https://b.example
			jwks %s
		}
		jwt op {
			alg RS256
			discover %s
			jwks_refetch_interval 1h
		}
		jwt local {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
	}
	reverse_proxy %s {
		header_up X-Account {http.auth.user.id}
	}
}`, setA.URL, setB.URL, op.URL, strings.TrimPrefix(be.URL, "http://")), "caddyfile")

	path := "/p/accounts/sessions/x"
	tokA := testkit.SignKid(t, "RS256", "k1", keyA, issuedBy("https://a.example", "alice"))
	tokB := testkit.SignKid(t, "RS256", "k1", keyB, issuedBy("https://b.example", "bob"))
	tokOP := testkit.SignKid(t, "RS256", "op-1", keyOP1, issuedBy(op.URL, "olga"))
	for name, tt := range map[string]struct {
		token   string
		status  int
		account string
	}{
		"a's token":              {tokA, 200, "alice"},
		"b's token, same kid":    {tokB, 200, "bob"},
		"a's iss with b's key":   {testkit.SignKid(t, "RS256", "k1", keyB, issuedBy("https://a.example", "mallory")), 401, ""},
		"b's iss with a's key":   {testkit.SignKid(t, "RS256", "k1", keyA, issuedBy("https://b.example", "mallory")), 401, ""},
		"discovered provider":    {tokOP, 200, "olga"},
		"unknown issuer":         {testkit.SignKid(t, "RS256", "k1", keyA, issuedBy("https://c.example", "mallory")), 401, ""},
		"no iss, local provider": {tokenFor(t, "lou"), 200, "lou"},
	} {
		r := fwd(t, tc, request{method: "GET", path: path, token: tt.token})
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d: %s", name, r.status, tt.status, r.body)
			continue
		}
		if tt.status == 200 && be.last().header.Get("X-Account") != tt.account {
			t.Errorf("%s: backend saw account %q", name, be.last().header.Get("X-Account"))
		}
	}
	if r := call(t, tc, request{method: "GET", path: path, token: testkit.SignKid(t, "RS256", "k1", keyA, issuedBy("https://c.example", "m"))}); !strings.Contains(string(r.body), "issuer") {
		t.Errorf("unknown issuer answered %s, want the issuer named", r.body)
	}

	// From a cookie, and from the query, which the backend never sees.
	if r := fwd(t, tc, request{method: "GET", path: path, header: map[string]string{"Cookie": "ownid_token=" + tokB}}); r.status != 200 {
		t.Errorf("token in a cookie: %d %s", r.status, r.body)
	}
	n := be.count()
	if r := fwd(t, tc, request{method: "GET", path: path + "?access_token=" + tokA}); r.status != 200 || be.count() != n+1 {
		t.Fatalf("token in the query: %d %s", r.status, r.body)
	}
	if got := be.last(); strings.Contains(got.query, "access_token") || strings.Contains(got.query, tokA) || got.header.Get("X-Account") != "alice" {
		t.Errorf("the backend saw query %q, account %q", got.query, got.header.Get("X-Account"))
	}

	// The set behind the discovered jwks_uri rotates: the new kid verifies
	// after one refetch.
	setOP.Serve(t, testkit.JWK{KID: "op-2", ALG: jwkset.AlgRS256, Key: &keyOP2.PublicKey})
	if r := fwd(t, tc, request{method: "GET", path: path, token: testkit.SignKid(t, "RS256", "op-2", keyOP2, issuedBy(op.URL, "olga"))}); r.status != 200 {
		t.Errorf("token of the rotated-in key: %d %s", r.status, r.body)
	}
	if r := fwd(t, tc, request{method: "GET", path: path, token: tokOP}); r.status != 401 {
		t.Errorf("token of the rotated-out key: %d", r.status)
	}
}

// TestQueryTokenNeverLogged mirrors TestLogsNeverLeak for tokens sent in the
// query: accepted, refused and forwarded, with Caddy logging at DEBUG to a
// file, none of them is in the log, nor reaches the backend.
func TestQueryTokenNeverLogged(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(fmt.Sprintf(`
{
`+testGlobals+`
	grace_period 1ns
	log {
		output file %s
		level DEBUG
	}
}
http://localhost:9080 {
	route /fwd/* {
		ownid_sessions {
			mode forward
			validate_responses off
			token_from query access_token
			jwt {
				alg HS256
				secret {env.OWNID_TEST_SECRET}
			}
		}
		reverse_proxy %s
	}
	ownid_sessions {
		token_from query access_token
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
			require role admin
		}
		store memory query-logs-test
	}
}`, logFile, strings.TrimPrefix(be.URL, "http://")), "caddyfile")

	admin := claimsFor("q-user")
	admin["role"] = "admin"
	tok := sign(t, "HS256", admin)
	expired := claimsFor("q-user")
	expired["exp"] = testNow().Add(-time.Hour).Unix()
	tokens := []string{tok, sign(t, "HS256", expired), sign(t, "HS256", claimsFor("q-user")), tok + "tampered"}
	for _, tk := range tokens {
		call(t, tc, request{method: "GET", path: "/l/accounts/sessions?access_token=" + tk, unchecked: true})
		fwd(t, tc, request{method: "GET", path: "/fwd/accounts/sessions/x?a=1&access_token=" + tk})
	}
	if got := be.last(); be.count() != 2 || got.query != "a=1" { // the valid token, and the one without role
		t.Errorf("backend got %d requests, the last with query %q", be.count(), got.query)
	}
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}`), "caddyfile") // flushes and closes the log file
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"request rejected"`, `"problem":"invalid-token"`, `"problem":"claim-requirement-failed"`} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("the log lacks %s: the scan would prove nothing", want)
		}
	}
	for _, tk := range tokens {
		for _, secret := range []string{tk, strings.Split(tk, ".")[2]} {
			if bytes.Contains(logs, []byte(secret)) {
				t.Errorf("the log holds a token (%.12s…)", secret)
			}
		}
	}
}
