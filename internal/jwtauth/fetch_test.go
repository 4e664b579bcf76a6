package jwtauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/caddyserver/caddy/v2"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
)

// endless is a body that never ends, counting what was read of it.
type endless struct{ read atomic.Int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	e.read.Add(int64(len(p)))
	return len(p), nil
}

func (e *endless) Close() error { return nil }

type fixedTransport struct{ body io.ReadCloser }

func (f fixedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, ContentLength: -1, Body: f.body, Header: http.Header{}}, nil
}

// TestLimitedTransportReadsNoFurther: an answer without a length is read
// only up to the bound, then fails with errTooLarge; an announced length
// over the bound fails before any read.
func TestLimitedTransportReadsNoFurther(t *testing.T) {
	body := &endless{}
	client := &http.Client{Transport: limitedTransport{base: fixedTransport{body}, maxBytes: 1000}}
	resp, err := client.Get("http://127.0.0.1/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var v any
	err = json.NewDecoder(resp.Body).Decode(&v)
	if !errors.Is(err, errTooLarge) {
		t.Errorf("decoding an endless answer: %v, want errTooLarge", err)
	}
	if n := body.read.Load(); n > 1000+64<<10 {
		t.Errorf("read %d bytes of a 1000-byte bound", n)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat(" ", 2000)))
	}))
	defer srv.Close()
	client = &http.Client{Transport: limitedTransport{maxBytes: 1000}}
	if _, err := client.Get(srv.URL); !errors.Is(err, errTooLarge) {
		t.Errorf("announced length over the bound: %v", err)
	}
}

// TestJWKSBounds: a set over jwks_max_bytes or jwks_max_keys fails that
// fetch, counted as too_large, and the keys held before stay in use.
func TestJWKSBounds(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	extra, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, mutate := range map[string]func(*Config){
		"bytes": func(c *Config) { c.JWKSMaxBytes = 700 },
		"keys":  func(c *Config) { c.JWKSMaxKeys = 1 },
	} {
		srv := testkit.NewJWKSServer(t)
		srv.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &key.PublicKey})
		v, obs := jwksVerifier(t, mutate, srv.URL)
		old := testkit.SignKid(t, "RS256", "k1", key, claimsFor("b"))
		if !accepted(t, v, old) {
			t.Fatalf("%s: the first set, within bounds, was not used", name)
		}
		srv.Serve(t, testkit.JWK{KID: "k1", ALG: jwkset.AlgRS256, Key: &key.PublicKey},
			testkit.JWK{KID: "k2", ALG: jwkset.AlgRS256, Key: &extra.PublicKey})
		if accepted(t, v, testkit.SignKid(t, "RS256", "k2", extra, claimsFor("b"))) {
			t.Errorf("%s: a key of the oversized set was used", name)
		}
		if obs.tooLarge.Load() != 1 {
			t.Errorf("%s: %d fetches counted too_large, want 1", name, obs.tooLarge.Load())
		}
		if !accepted(t, v, old) {
			t.Errorf("%s: the keys held before were dropped", name)
		}
		if st := v.JWKS()[0]; !strings.Contains(st.LastError, "jwks_max_") {
			t.Errorf("%s: status %+v does not name the bound", name, st)
		}
	}
}

// discoveryServer answers an OpenID Provider configuration naming issuer
// (its own URL unless set) and jwksURI.
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
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": jwksURI})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestDiscover: discovery supplies the keys and the issuer; a rotation
// behind jwks_uri is followed as for jwks.
func TestDiscover(t *testing.T) {
	key1, _ := rsa.GenerateKey(rand.Reader, 2048)
	key2, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys := testkit.NewJWKSServer(t)
	keys.Serve(t, testkit.JWK{KID: "d1", ALG: jwkset.AlgRS256, Key: &key1.PublicKey})
	op := discoveryServer(t, nil, keys.URL)
	v, err := New(&Config{Algorithms: []string{"RS256"}, Discover: op.URL, JWKSRefetchInterval: caddy.Duration(time.Hour)}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if !accepted(t, v, testkit.SignKid(t, "RS256", "d1", key1, issued(op.URL))) {
		t.Error("token of the discovered key refused")
	}
	if _, e := verifyToken(v, testkit.SignKid(t, "RS256", "d1", key1, issued("https://other.example"))); e == nil || e.Reason != "issuer" {
		t.Errorf("token of another issuer: %v, want the discovered issuer enforced", e)
	}
	keys.Serve(t, testkit.JWK{KID: "d2", ALG: jwkset.AlgRS256, Key: &key2.PublicKey})
	if !accepted(t, v, testkit.SignKid(t, "RS256", "d2", key2, issued(op.URL))) {
		t.Error("token of the rotated-in key refused")
	}
	if st := v.JWKS(); len(st) != 1 || st[0].URL != keys.URL || st[0].Keys != 1 {
		t.Errorf("status %+v, want the discovered set", st)
	}
}

func TestDiscoverErrors(t *testing.T) {
	keys := testkit.NewJWKSServer(t)
	wrong := "https://impostor.example"
	mismatch := discoveryServer(t, &wrong, keys.URL)
	badJWKS := discoveryServer(t, nil, "http://keys.example/jwks")
	noJWKS := discoveryServer(t, nil, "")
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"issuer":"` + strings.Repeat("x", 2<<20) + `"}`))
	}))
	defer big.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	tests := map[string]struct{ url, want string }{
		"issuer mismatch":    {mismatch.URL, `names the issuer "https://impostor.example", not the configured "` + mismatch.URL + `"`},
		"http jwks_uri":      {badJWKS.URL, "jwks_uri: jwks: http://keys.example/jwks: plain http"},
		"no jwks_uri":        {noJWKS.URL, "has no jwks_uri"},
		"too large":          {big.URL, "jwks_max_bytes"},
		"unreachable":        {down.URL, "cannot be fetched"},
		"http to a far host": {"http://op.example", "plain http is only allowed to a loopback host"},
		"not found":          {keys.URL + "/nothing", "answered 404"},
	}
	keys.Config.Handler = http.NotFoundHandler()
	for name, tt := range tests {
		_, err := New(&Config{Name: "op", Algorithms: []string{"RS256"}, Discover: tt.url}, testEnv(t))
		if err == nil || !strings.HasPrefix(err.Error(), "jwt op discover: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want jwt op discover: …%s", name, err, tt.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := discover(ctx, mismatch.URL, fetchLimits{maxBytes: 1 << 20}, time.Second); err == nil {
		t.Error("discovery with an ended context succeeded")
	}
}
