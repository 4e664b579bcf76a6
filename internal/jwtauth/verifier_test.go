package jwtauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

var allAlgorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// testVerifier accepts every algorithm with the test keys.
func testVerifier(t testing.TB, mutate func(*Config)) *Verifier {
	t.Helper()
	cfg := &Config{
		Algorithms: allAlgorithms,
		Secret:     testSecret,
		Keys:       []string{testKeys.RSAPEM, testKeys.ECPEM, testKeys.EdPEM},
	}
	if mutate != nil {
		mutate(cfg)
	}
	v, err := New(cfg, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func verifyToken(v *Verifier, token string) (*Identity, *Error) {
	r := httptest.NewRequest("GET", "/accounts/sessions", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return v.Verify(r)
}

func TestVerifyEveryAlgorithm(t *testing.T) {
	v := testVerifier(t, nil)
	for _, alg := range allAlgorithms {
		id, p := verifyToken(v, sign(t, alg, claimsFor("alice")))
		if p != nil {
			t.Errorf("%s: %v", alg, p)
			continue
		}
		if id.Subject != "alice" {
			t.Errorf("%s: sub %q", alg, id.Subject)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	v := testVerifier(t, func(c *Config) {
		c.Issuers = []string{"https://issuer.example", "https://other.example"}
		c.Audiences = []string{"sessions"}
		leeway := caddy.Duration(10 * time.Second)
		c.Leeway = &leeway
	})
	good := func() jwt.MapClaims {
		c := claimsFor("alice")
		c["iss"] = "https://other.example"
		c["aud"] = []string{"x", "sessions"}
		return c
	}
	if _, p := verifyToken(v, sign(t, "HS256", good())); p != nil {
		t.Fatalf("good token refused: %v", p)
	}
	now := testNow()
	with := func(k string, val any) jwt.MapClaims {
		c := good()
		if val == nil {
			delete(c, k)
		} else {
			c[k] = val
		}
		return c
	}
	// Algorithm confusion: an HS256 token keyed with the RSA public key PEM.
	hsRSA, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good()).SignedString(mustRead(t, testKeys.RSAPEM))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// A key the verifier does not hold, as after a rotation.
	retired, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, good()).SignedString(retired)
	tests := map[string]struct {
		token  string
		detail string
	}{
		"expired":             {sign(t, "HS256", with("exp", now.Add(-20*time.Second).Unix())), "expired"},
		"no exp":              {sign(t, "HS256", with("exp", nil)), "required claim"},
		"nbf beyond leeway":   {sign(t, "HS256", with("nbf", now.Add(20*time.Second).Unix())), "not valid yet"},
		"iat beyond leeway":   {sign(t, "HS256", with("iat", now.Add(20*time.Second).Unix())), "issued in the future"},
		"wrong issuer":        {sign(t, "HS256", with("iss", "https://evil.example")), "issuer"},
		"no issuer":           {sign(t, "HS256", with("iss", nil)), "issuer"},
		"wrong audience":      {sign(t, "HS256", with("aud", "other")), "audience"},
		"no audience":         {sign(t, "HS256", with("aud", nil)), "required claim"},
		"alg none":            {none, "signature"},
		"hs256 with RSA PEM":  {hsRSA, "signature"},
		"unknown RSA key":     {rotated, "signature"},
		"bad base64 header":   {"!!!.e30.e30", "malformed"},
		"bad base64 sig":      {resign(sign(t, "HS256", good()), "!!!"), "malformed"},
		"header without alg":  {"e30.e30.e30", "cannot be verified"},
		"not json":            {"YWJj.YWJj.YWJj", "malformed"},
		"many dots":           {strings.Repeat(".", 5000), "compact"},
		"huge token":          {strings.Repeat("a", 100<<10) + ".a.a", "too large"},
		"tampered payload":    {tamper(sign(t, "HS256", good())), "signature"},
		"tampered ES256":      {tamper(sign(t, "ES256", good())), "signature"},
		"ES256 sig for ES384": {relabel(t, sign(t, "ES384", good()), "ES256"), "signature"},
	}
	for name, tt := range tests {
		_, p := verifyToken(v, tt.token)
		if p == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if p.Status != 401 || !p.TokenSent || !strings.Contains(p.Detail, tt.detail) {
			t.Errorf("%s: %v, want invalid-token about %q", name, p, tt.detail)
		}
		if strings.Contains(p.Detail, tt.token[:min(len(tt.token), 20)]) && len(tt.token) > 20 {
			t.Errorf("%s: the detail quotes the token", name)
		}
	}
	// Within leeway is fine.
	if _, p := verifyToken(v, sign(t, "HS256", with("exp", now.Add(-5*time.Second).Unix()))); p != nil {
		t.Errorf("expired within leeway refused: %v", p)
	}
}

// tamper changes the payload of a token, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	c := claimsFor("mallory")
	enc, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SigningString()
	parts[1] = strings.Split(enc, ".")[1]
	return strings.Join(parts, ".")
}

// resign replaces a token's signature.
func resign(token, sig string) string {
	return token[:strings.LastIndexByte(token, '.')+1] + sig
}

// relabel puts another alg in a token's header, keeping payload and signature.
func relabel(t *testing.T, token, alg string) string {
	parts := strings.Split(token, ".")
	h, _ := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims{}).SigningString()
	parts[0] = strings.Split(h, ".")[0]
	return strings.Join(parts, ".")
}

func TestNewVerifierConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a pem"), 0o600)
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"no alg":             {Config{Secret: testSecret}, "jwt alg: at least one"},
		"unknown alg":        {Config{Algorithms: []string{"HS257"}, Secret: testSecret}, `jwt alg: unknown algorithm "HS257"`},
		"none":               {Config{Algorithms: []string{"none"}, Secret: testSecret}, "jwt alg: 'none' is never accepted"},
		"no key source":      {Config{Algorithms: []string{"HS256"}}, "jwt: no key source"},
		"short secret":       {Config{Algorithms: []string{"HS256"}, Secret: "short"}, "jwt secret: must be at least 32 bytes"},
		"unset env secret":   {Config{Algorithms: []string{"HS256"}, Secret: "{env.OWNID_NOT_SET_ANYWHERE}"}, "jwt secret"},
		"alg without key":    {Config{Algorithms: []string{"HS256", "RS256"}, Secret: testSecret}, "jwt alg: RS256 needs an RSA key"},
		"key without alg":    {Config{Algorithms: []string{"HS256"}, Secret: testSecret, Keys: []string{testKeys.RSAPEM}}, "jwt alg: an RSA key is configured but no allowed algorithm uses it"},
		"curve mismatch":     {Config{Algorithms: []string{"ES256"}, Keys: []string{testKeys.EdPEM}}, "ES256 needs an EC P-256 key"},
		"missing key file":   {Config{Algorithms: []string{"RS256"}, Keys: []string{filepath.Join(dir, "nope.pem")}}, "jwt key:"},
		"not pem":            {Config{Algorithms: []string{"RS256"}, Keys: []string{garbage}}, "no PEM public key"},
		"private key":        {Config{Algorithms: []string{"RS256"}, Keys: []string{testKeys.PrivPEM}}, "holds a private key"},
		"negative leeway":    {Config{Algorithms: []string{"HS256"}, Secret: testSecret, Leeway: durationPtr(-time.Second)}, "jwt leeway"},
		"lowercase alg name": {Config{Algorithms: []string{"hs256"}, Secret: testSecret}, "unknown algorithm"},
	}
	for name, tt := range tests {
		_, err := New(&tt.cfg, testEnv(t))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", name, err, tt.want)
		}
	}
}

func TestSecretFromEnvironment(t *testing.T) {
	v, err := New(&Config{Algorithms: []string{"HS256"}, Secret: "{env.OWNID_TEST_SECRET}"}, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, p := verifyToken(v, sign(t, "HS256", claimsFor("alice"))); p != nil {
		t.Fatalf("token signed with the environment's secret refused: %v", p)
	}
}

// TestCriticalHeader: a token naming critical header extensions is refused
// (RFC 7515 §4.1.11), even when its signature verifies.
func TestCriticalHeader(t *testing.T) {
	v := testVerifier(t, nil)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("crit"))
	tok.Header["crit"] = []string{"exp"}
	signed, err := tok.SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	_, e := verifyToken(v, signed)
	if e == nil || e.Reason != "critical_header" || e.Status != 401 || !e.TokenSent {
		t.Fatalf("crit token: %v", e)
	}
}

// TestClaimRequirementIs403: a valid token failing a requirement is a 403
// naming the claim, after the signature was checked.
func TestClaimRequirementIs403(t *testing.T) {
	v := testVerifier(t, func(c *Config) { c.Require = map[string][]string{"role": {"admin"}} })
	claims := claimsFor("bob")
	claims["role"] = "user"
	_, e := verifyToken(v, sign(t, "ES256", claims))
	if e == nil || e.Status != 403 || e.Reason != "requirement" || e.Detail != `the token does not meet the requirement on claim "role"` {
		t.Fatalf("failed requirement: %v", e)
	}
	claims["role"] = "admin"
	if id, e := verifyToken(v, sign(t, "ES256", claims)); e != nil || id.Claims["role"] != "admin" {
		t.Fatalf("met requirement: %v", e)
	}
	if _, e := verifyToken(v, tamper(sign(t, "ES256", claims))); e == nil || e.Status != 401 {
		t.Fatalf("a forged token is a 401 before any requirement: %v", e)
	}
}

func durationPtr(d time.Duration) *caddy.Duration {
	c := caddy.Duration(d)
	return &c
}

// BenchmarkVerify: one token verification per algorithm with the cache off,
// on but missing (emptied each time: hash, verify and insert), and a hit.
func BenchmarkVerify(b *testing.B) {
	off := 0
	noCache := testVerifier(b, func(c *Config) { c.CacheSize = &off })
	cached := testVerifier(b, nil)
	for _, alg := range []string{"HS256", "RS256", "PS256", "ES256", "EdDSA"} {
		r := httptest.NewRequest("PUT", "/accounts/sessions/x", nil)
		r.Header.Set("Authorization", "Bearer "+sign(b, alg, claimsFor("bench")))
		for _, mode := range []string{"cache-off", "cache-miss", "cache-hit"} {
			v := cached
			if mode == "cache-off" {
				v = noCache
			}
			b.Run(alg+"/"+mode, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if mode == "cache-miss" {
						v.cache.clear()
					}
					if _, p := v.Verify(r); p != nil {
						b.Fatal(p)
					}
				}
			})
		}
	}
}

// TestVerifyRefusesAmbiguousTokens: a token whose header or payload repeats
// a name, holds invalid UTF-8 or an iss that is not a string is refused,
// even with a valid signature: otherwise two readers could see two
// identities, or two subjects could be one account.
func TestVerifyRefusesAmbiguousTokens(t *testing.T) {
	v := testVerifier(t, nil)
	exp := testNow().Add(time.Hour).Unix()
	signRaw := func(header, payload string) string {
		enc := base64.RawURLEncoding.EncodeToString
		unsigned := enc([]byte(header)) + "." + enc([]byte(payload))
		mac := hmac.New(sha256.New, []byte(testSecret))
		mac.Write([]byte(unsigned))
		return unsigned + "." + enc(mac.Sum(nil))
	}
	hs := `{"alg":"HS256","typ":"JWT"}`
	claims := func(extra string) string { return fmt.Sprintf(`{"exp":%d,%s}`, exp, extra) }
	if _, e := verifyToken(v, signRaw(hs, claims(`"sub":"alice"`))); e != nil {
		t.Fatalf("a well-formed token signed by hand is refused: %v", e)
	}
	for name, token := range map[string]string{
		"repeated sub":       signRaw(hs, claims(`"sub":"alice","sub":"bob"`)),
		"repeated alg":       signRaw(`{"alg":"none","alg":"HS256"}`, claims(`"sub":"alice"`)),
		"invalid UTF-8 sub":  signRaw(hs, claims("\"sub\":\"u1\xff\"")),
		"iss a number":       signRaw(hs, claims(`"sub":"alice","iss":5`)),
		"iss an array":       signRaw(hs, claims(`"sub":"alice","iss":["a"]`)),
		"iss null":           signRaw(hs, claims(`"sub":"alice","iss":null`)),
		"two payload values": signRaw(hs, claims(`"sub":"alice"`)+"{}"),
	} {
		if _, e := verifyToken(v, token); e == nil || e.Reason != "malformed" {
			t.Errorf("%s: %v, want refused as malformed", name, e)
		}
	}
}
