// Package testkit holds what the tests of the root package and of
// internal/jwtauth both need: signing keys made in the test, and a JWK Set
// server the test can change, break and count. Only tests import it.
package testkit

import (
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

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Keys are the test binary's private keys, generated once, and PEM files
// of their public halves for the configs.
type Keys struct {
	RSA     *rsa.PrivateKey
	EC256   *ecdsa.PrivateKey
	EC384   *ecdsa.PrivateKey
	EC521   *ecdsa.PrivateKey
	Ed      ed25519.PrivateKey
	RSAPEM  string // file with the RSA public key
	ECPEM   string // file with the three EC public keys
	EdPEM   string // file with the Ed25519 public key
	PrivPEM string // file with the RSA private key (must be refused as a key)
}

// MakeKeys generates the keys and writes the PEM files into dir. It panics
// on failure: it runs in TestMain, before any test.
func MakeKeys(dir string) *Keys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &Keys{}
	var err error
	k.RSA, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.EC256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.EC384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.EC521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	_, k.Ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	pubPEM := func(keys ...any) []byte {
		var out []byte
		for _, key := range keys {
			der, err := x509.MarshalPKIXPublicKey(key)
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
	k.RSAPEM = write("rsa.pem", pubPEM(&k.RSA.PublicKey))
	k.ECPEM = write("ec.pem", pubPEM(&k.EC256.PublicKey, &k.EC384.PublicKey, &k.EC521.PublicKey))
	k.EdPEM = write("ed.pem", pubPEM(k.Ed.Public()))
	k.PrivPEM = write("rsa-private.pem", pem.EncodeToMemory(&pem.Block{
		Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.RSA),
	}))
	return k
}

// JWKSServer is a real HTTP server for a JWK Set that the test can change,
// break and count.
type JWKSServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	failing bool
	Fetches atomic.Int64
}

// NewJWKSServer starts a server that answers an empty body until Serve.
func NewJWKSServer(t testing.TB) *JWKSServer {
	s := &JWKSServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Fetches.Add(1)
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

// JWK is one key of a served set.
type JWK struct {
	KID string
	ALG jwkset.ALG // "" leaves alg out of the JWK
	Key any        // the public key
}

// Serve replaces the set the server answers with, and ends a failure.
func (s *JWKSServer) Serve(t testing.TB, keys ...JWK) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.Key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.KID, ALG: k.ALG}})
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

// Fail makes the server answer 503, or stop doing so.
func (s *JWKSServer) Fail(failing bool) {
	s.mu.Lock()
	s.failing = failing
	s.mu.Unlock()
}

// SignKid signs claims with key under alg, naming kid in the header.
func SignKid(t testing.TB, alg, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
