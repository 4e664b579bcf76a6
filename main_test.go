package ownidsessions

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

// testClock is the time every handler in this test binary sees: the real
// time plus an offset the tests move, so expiry is tested without sleeping.
var testClockOffset atomic.Int64

func testNow() time.Time { return time.Now().Add(time.Duration(testClockOffset.Load())) }

// advanceClock moves the handlers' time forward for the rest of the test.
func advanceClock(t testing.TB, d time.Duration) {
	testClockOffset.Add(int64(d))
	t.Cleanup(func() { testClockOffset.Add(-int64(d)) })
}

// t0 is a fixed time for unit tests that hand the time in.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// testGlobals are the global options of every end-to-end config:
// caddytest's admin address, loopback ports only, no trust store install.
const testGlobals = `	admin localhost:2999
	http_port 9080
	https_port 9443
	default_bind 127.0.0.1
	skip_install_trust`

// testSecret is the HMAC secret of the end-to-end configs, given to Caddy
// through the environment as a user would.
const testSecret = "test-secret-0123456789abcdef0123456789"

// testKeys are generated once per test binary; their public halves are
// written to PEM files for the configs.
var testKeys struct {
	rsa     *rsa.PrivateKey
	ec256   *ecdsa.PrivateKey
	ec384   *ecdsa.PrivateKey
	ec521   *ecdsa.PrivateKey
	ed      ed25519.PrivateKey
	dir     string
	rsaPEM  string // file with the RSA public key
	ecPEM   string // file with the three EC public keys
	edPEM   string // file with the Ed25519 public key
	privPEM string // file with the RSA private key (must be refused as a key)
}

func TestMain(m *testing.M) {
	// caddytest skips its tests, while the run still says ok, when its
	// prerequisites are missing; under -trimpath it cannot find its
	// certificates. Refuse to run rather than pass without testing.
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "-trimpath" && s.Value == "true" {
				fmt.Fprintln(os.Stderr, "these tests cannot run under -trimpath: caddytest would skip them")
				os.Exit(2)
			}
		}
	}
	dir, err := os.MkdirTemp("", "ownid-sessions-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("OWNID_TEST_SECRET", testSecret)
	clock = testNow
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
	testKeys.dir = dir
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
	switch alg {
	case "HS256", "HS384", "HS512":
		return []byte(testSecret)
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return testKeys.rsa
	case "ES256":
		return testKeys.ec256
	case "ES384":
		return testKeys.ec384
	case "ES512":
		return testKeys.ec521
	case "EdDSA":
		return testKeys.ed
	}
	panic("no test key for " + alg)
}

// claimsFor is a valid claim set for sub at the handlers' time.
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

// newTestContext is a Caddy context for provisioning modules in unit tests.
func newTestContext(t testing.TB) (caddy.Context, context.CancelFunc) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	return ctx, cancel
}
