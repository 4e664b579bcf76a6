package jwtauth

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
)

// twoProviders is a verifier of two RS256 providers, a and b, each with its
// own JWK Set publishing the same kid "k1" under a different key, and a
// third, local, that takes HS256 tokens without iss.
func twoProviders(t *testing.T) (v *Verifier, keyA, keyB *rsa.PrivateKey, obs *countingObserver) {
	t.Helper()
	keyA, _ = rsa.GenerateKey(rand.Reader, 2048)
	keyB, _ = rsa.GenerateKey(rand.Reader, 2048)
	srvA, srvB := testkit.NewJWKSServer(t), testkit.NewJWKSServer(t)
	srvA.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &keyA.PublicKey})
	srvB.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &keyB.PublicKey})
	cfgs := []*Config{
		{Name: "a", Algorithms: []string{"RS256"}, Issuers: []string{"https://a.example"}, JWKS: []string{srvA.URL}, JWKSRefetchInterval: caddy.Duration(time.Hour)},
		{Name: "b", Algorithms: []string{"RS256"}, Issuers: []string{"https://b.example"}, JWKS: []string{srvB.URL}, JWKSRefetchInterval: caddy.Duration(time.Hour), Require: map[string][]string{"role": {"admin"}}},
		{Name: "local", Algorithms: []string{"HS256"}, Secret: testSecret},
	}
	obs = &countingObserver{}
	env := testEnv(t)
	env.Observer = obs
	v, err := NewProviders(cfgs, nil, env)
	if err != nil {
		t.Fatal(err)
	}
	return v, keyA, keyB, obs
}

func issued(iss string, extra ...string) jwt.MapClaims {
	c := claimsFor("alice")
	if iss != "" {
		c["iss"] = iss
	}
	for i := 0; i+1 < len(extra); i += 2 {
		c[extra[i]] = extra[i+1]
	}
	return c
}

// TestProvidersMatchByIssuer: the iss picks the provider, the kid is looked
// up in that provider's keys only, and the identity says which provider
// verified it, from the cache too.
func TestProvidersMatchByIssuer(t *testing.T) {
	v, keyA, keyB, obs := twoProviders(t)
	tests := map[string]struct {
		token    string
		provider string // "" with reason: refused
		reason   string
		status   int
	}{
		"a's token":                   {token: testkit.SignKid(t, "RS256", "k1", keyA, issued("https://a.example")), provider: "a"},
		"b's token":                   {token: testkit.SignKid(t, "RS256", "k1", keyB, issued("https://b.example", "role", "admin")), provider: "b"},
		"a's iss, b's key":            {token: testkit.SignKid(t, "RS256", "k1", keyB, issued("https://a.example")), reason: "signature", status: 401},
		"b's iss, a's key":            {token: testkit.SignKid(t, "RS256", "k1", keyA, issued("https://b.example", "role", "admin")), reason: "signature", status: 401},
		"b's rules hold b's tokens":   {token: testkit.SignKid(t, "RS256", "k1", keyB, issued("https://b.example")), reason: "requirement", status: 403},
		"unknown issuer":              {token: testkit.SignKid(t, "RS256", "k1", keyA, issued("https://c.example")), reason: "issuer", status: 401},
		"no iss goes to local":        {token: sign(t, "HS256", issued("")), provider: "local"},
		"unknown iss, local's secret": {token: sign(t, "HS256", issued("https://c.example")), reason: "issuer", status: 401},
		"a's iss, local's secret":     {token: sign(t, "HS256", issued("https://a.example")), reason: "signature", status: 401},
		"iss not a string":            {token: sign(t, "HS256", jwt.MapClaims{"iss": 7, "exp": testNow().Add(time.Hour).Unix()}), reason: "malformed", status: 401},
	}
	for name, tt := range tests {
		for round := range 2 { // the second from the cache, if it was kept
			id, e := verifyToken(v, tt.token)
			switch {
			case tt.provider != "" && (e != nil || id.Provider != tt.provider):
				t.Errorf("%s (round %d): %v, provider %v; want provider %s", name, round, e, id, tt.provider)
			case tt.provider == "" && (e == nil || e.Reason != tt.reason || e.Status != tt.status):
				t.Errorf("%s (round %d): %v, want %d %s", name, round, e, tt.status, tt.reason)
			}
		}
	}
	if obs.hits.Load() < 3 {
		t.Errorf("%d cache hits, want the accepted tokens' second rounds", obs.hits.Load())
	}
}

// TestOneProviderKeepsItsRule: with a single provider, a token goes to it
// whatever its iss, and its issuer list (if any) is checked after the
// signature, as before providers.
func TestOneProviderKeepsItsRule(t *testing.T) {
	open := testVerifier(t, nil)
	if _, e := verifyToken(open, sign(t, "HS256", issued("https://anyone.example"))); e != nil {
		t.Errorf("one provider without issuer refused an iss: %v", e)
	}
	closed := testVerifier(t, func(c *Config) { c.Issuers = []string{"https://a.example"} })
	if _, e := verifyToken(closed, sign(t, "HS256", issued("https://b.example"))); e == nil || e.Reason != "issuer" {
		t.Errorf("other issuer: %v, want issuer", e)
	}
	if _, e := verifyToken(closed, tamper(sign(t, "HS256", issued("https://b.example")))); e == nil || e.Reason != "signature" {
		t.Errorf("tampered token of another issuer: %v, want the signature checked first", e)
	}
}

func TestProvidersConfigErrors(t *testing.T) {
	p := func(name string, issuers ...string) *Config {
		return &Config{Name: name, Algorithms: []string{"HS256"}, Secret: testSecret, Issuers: issuers}
	}
	tests := map[string]struct {
		cfgs []*Config
		want string
	}{
		"none":                  {nil, "at least one provider"},
		"unnamed among several": {[]*Config{p("a", "x"), p("", "y")}, "each needs a name"},
		"same name":             {[]*Config{p("a", "x"), p("a", "y")}, "jwt a: two providers have this name"},
		"shared issuer":         {[]*Config{p("a", "x"), p("b", "x")}, `jwt b issuer: "x" is also an issuer of provider a`},
		"two without issuer":    {[]*Config{p("a"), p("b")}, "jwt b issuer: providers a and b both list no issuer"},
		"named provider error":  {[]*Config{p("a", "x"), {Name: "b", Algorithms: []string{"HS256"}}}, "jwt b: no key source"},
	}
	for name, tt := range tests {
		_, err := NewProviders(tt.cfgs, nil, testEnv(t))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", name, err, tt.want)
		}
	}
}

// TestUnverifiedIssuer: iss is read only to choose a provider; a payload that
// cannot be read is malformed.
func TestUnverifiedIssuer(t *testing.T) {
	for raw, want := range map[string]struct {
		iss         string
		present, ok bool
	}{
		sign(t, "HS256", issued("https://a")): {"https://a", true, true},
		sign(t, "HS256", issued("")):          {"", false, true},
		"a.b":                                 {"", false, false},
		"a.!!!.c":                             {"", false, false},
		"a.bm90IGpzb24.c":                     {"", false, false},
	} {
		iss, present, ok := unverifiedIssuer(raw)
		if iss != want.iss || present != want.present || ok != want.ok {
			t.Errorf("%.20s: %q %v %v, want %+v", raw, iss, present, ok, want)
		}
	}
}
