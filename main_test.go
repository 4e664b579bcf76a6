package ownidsessions

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
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

// testKeys are generated once per test binary (internal/testkit).
var testKeys *testkit.Keys

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
	testKeys = testkit.MakeKeys(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// signingKey returns the private key that signs alg in these tests.
func signingKey(alg string) any {
	switch alg {
	case "HS256", "HS384", "HS512":
		return []byte(testSecret)
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return testKeys.RSA
	case "ES256":
		return testKeys.EC256
	case "ES384":
		return testKeys.EC384
	case "ES512":
		return testKeys.EC521
	case "EdDSA":
		return testKeys.Ed
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
