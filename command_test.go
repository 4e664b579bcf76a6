package ownidsessions

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
)

func TestMintToken(t *testing.T) {
	v := testVerifier(t, nil)
	der, err := x509.MarshalPKCS8PrivateKey(testKeys.EC256)
	if err != nil {
		t.Fatal(err)
	}
	ecFile := filepath.Join(t.TempDir(), "ec-private.pem")
	os.WriteFile(ecFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	edDER, _ := x509.MarshalPKCS8PrivateKey(testKeys.Ed)
	edFile := filepath.Join(t.TempDir(), "ed-private.pem")
	os.WriteFile(edFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER}), 0o600)

	for _, o := range []tokenOptions{
		{alg: "HS256", secret: testSecret, sub: "alice", ttl: time.Hour},
		{alg: "HS512", secret: testSecret, sub: "alice", ttl: time.Minute},
		{alg: "RS256", key: testKeys.PrivPEM, sub: "alice", ttl: time.Hour},
		{alg: "ES256", key: ecFile, sub: "alice", ttl: time.Hour},
		{alg: "EdDSA", key: edFile, sub: "alice", ttl: time.Hour},
	} {
		tok, err := mintToken(o, testNow())
		if err != nil {
			t.Errorf("%s: %v", o.alg, err)
			continue
		}
		id, p := verifyToken(v, tok)
		if p != nil {
			t.Errorf("%s: minted token refused: %v", o.alg, p)
			continue
		}
		if id.Subject != "alice" || id.Expires.IsZero() {
			t.Errorf("%s: claims %v", o.alg, id.Claims)
		}
	}

	// iss and aud land in the token; a verifier that wants them accepts it.
	strict := testVerifier(t, func(c *jwtauth.Config) {
		c.Issuers = []string{"me"}
		c.Audiences = []string{"you"}
	})
	tok, _ := mintToken(tokenOptions{alg: "HS256", secret: testSecret, sub: "a", ttl: time.Hour, iss: "me", aud: "you"}, testNow())
	if _, p := verifyToken(strict, tok); p != nil {
		t.Errorf("iss/aud token refused: %v", p)
	}
	// An expired ttl makes an expired token.
	old, _ := mintToken(tokenOptions{alg: "HS256", secret: testSecret, sub: "a", ttl: time.Minute}, testNow().Add(-time.Hour))
	if _, p := verifyToken(v, old); p == nil || !strings.Contains(p.detail, "expired") {
		t.Errorf("old token: %v", p)
	}
}

func TestMintTokenErrors(t *testing.T) {
	for want, o := range map[string]tokenOptions{
		"--sub is required": {alg: "HS256", secret: testSecret, ttl: time.Hour},
		"--ttl must be":     {alg: "HS256", secret: testSecret, sub: "a"},
		"unknown algorithm": {alg: "none", secret: testSecret, sub: "a", ttl: time.Hour},
		"--secret":          {alg: "HS256", sub: "a", ttl: time.Hour},
		"--key is required": {alg: "RS256", sub: "a", ttl: time.Hour},
		"no such file":      {alg: "RS256", key: "/nonexistent.pem", sub: "a", ttl: time.Hour},
		"no PEM block":      {alg: "RS256", key: "Caddyfile.example", sub: "a", ttl: time.Hour},
	} {
		_, err := mintToken(o, testNow())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", o, err, want)
		}
	}
}
