package ownidsessions

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig says how bearer tokens are verified. Tokens must carry exp; the
// "none" algorithm is never accepted; a key is only used with the algorithms
// its type allows.
type JWTConfig struct {
	// The signing algorithms accepted (allow-list): HS256 HS384 HS512
	// RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA.
	// Required.
	Algorithms []string `json:"alg,omitempty"`

	// The HMAC key for the HS* algorithms, at least 32 bytes. Placeholders
	// such as {env.OWNID_JWT_SECRET} are replaced when the config loads, so
	// the secret need not appear in the config.
	Secret string `json:"secret,omitempty"`

	// Files holding PEM public keys (RSA of at least 2048 bits, EC P-256,
	// P-384 or P-521, or Ed25519), or certificates carrying them.
	Keys []string `json:"key,omitempty"`

	// If set, the token's iss claim must be one of these.
	Issuers []string `json:"issuer,omitempty"`

	// If set, the token's aud claim must contain one of these.
	Audiences []string `json:"audience,omitempty"`

	// The clock skew tolerated on exp, nbf and iat. Default: 30s.
	Leeway *caddy.Duration `json:"leeway,omitempty"`
}

// Bounds on what is parsed at all: anything larger is refused before any
// decoding work.
const (
	maxAuthorizationHeader = 8 << 10
	minHMACSecret          = 32
	minRSABits             = 2048
)

// keyKind is the kind of key an algorithm verifies with.
type keyKind int

const (
	keyHMAC keyKind = iota
	keyRSA
	keyP256
	keyP384
	keyP521
	keyEd25519
)

// algorithms maps every accepted algorithm to the one kind of key it may use.
var algorithms = map[string]keyKind{
	"HS256": keyHMAC, "HS384": keyHMAC, "HS512": keyHMAC,
	"RS256": keyRSA, "RS384": keyRSA, "RS512": keyRSA,
	"PS256": keyRSA, "PS384": keyRSA, "PS512": keyRSA,
	"ES256": keyP256, "ES384": keyP384, "ES512": keyP521,
	"EdDSA": keyEd25519,
}

var keyKindNames = [...]string{
	keyHMAC: "an HMAC secret", keyRSA: "an RSA key", keyP256: "an EC P-256 key",
	keyP384: "an EC P-384 key", keyP521: "an EC P-521 key", keyEd25519: "an Ed25519 key",
}

// verifier checks bearer tokens. It is built once per config and is safe for
// concurrent use.
type verifier struct {
	parser  *jwt.Parser
	issuers []string
	// keysByAlg holds, for each allowed algorithm, the keys that may verify
	// it: what the key function hands golang-jwt.
	keysByAlg map[string]any
}

func newVerifier(cfg *JWTConfig, repl *caddy.Replacer, now func() time.Time) (*verifier, error) {
	if len(cfg.Algorithms) == 0 {
		return nil, fmt.Errorf("jwt alg: at least one algorithm is required")
	}
	byKind := map[keyKind][]any{}
	if cfg.Secret != "" {
		secret := repl.ReplaceKnown(cfg.Secret, "")
		if len(secret) < minHMACSecret {
			return nil, fmt.Errorf("jwt secret: must be at least %d bytes, got %d (is the environment variable it names set?)", minHMACSecret, len(secret))
		}
		byKind[keyHMAC] = append(byKind[keyHMAC], []byte(secret))
	}
	for _, file := range cfg.Keys {
		keys, err := loadPublicKeys(repl.ReplaceKnown(file, ""))
		if err != nil {
			return nil, fmt.Errorf("jwt key: %v", err)
		}
		for _, k := range keys {
			byKind[k.kind] = append(byKind[k.kind], k.key)
		}
	}
	if len(byKind) == 0 {
		return nil, fmt.Errorf("jwt: no key source: set secret or key")
	}

	v := &verifier{issuers: cfg.Issuers, keysByAlg: map[string]any{}}
	used := map[keyKind]bool{}
	for _, alg := range cfg.Algorithms {
		if strings.EqualFold(alg, "none") {
			return nil, fmt.Errorf("jwt alg: 'none' is never accepted")
		}
		kind, ok := algorithms[alg]
		if !ok {
			return nil, fmt.Errorf("jwt alg: unknown algorithm %q (want one of HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA)", alg)
		}
		keys := byKind[kind]
		switch len(keys) {
		case 0:
			return nil, fmt.Errorf("jwt alg: %s needs %s, and none is configured", alg, keyKindNames[kind])
		case 1:
			v.keysByAlg[alg] = keys[0]
		default:
			set := jwt.VerificationKeySet{}
			for _, k := range keys {
				set.Keys = append(set.Keys, k)
			}
			v.keysByAlg[alg] = set
		}
		used[kind] = true
	}
	for kind := range byKind {
		if !used[kind] {
			return nil, fmt.Errorf("jwt alg: %s is configured but no allowed algorithm uses it", keyKindNames[kind])
		}
	}

	leeway := defaultLeeway
	if cfg.Leeway != nil {
		leeway = time.Duration(*cfg.Leeway)
	}
	if leeway < 0 {
		return nil, fmt.Errorf("jwt leeway: must not be negative, got %s", leeway)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(cfg.Algorithms)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	}
	if len(cfg.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audiences...))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

type publicKey struct {
	kind keyKind
	key  any
}

// loadPublicKeys reads every public key in a PEM file. Private keys are
// refused: the edge needs only the public half.
func loadPublicKeys(file string) ([]publicKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var keys []publicKey
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub any
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("%s: holds a private key; give the public key only", file)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		k, err := classifyKey(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM public key found", file)
	}
	return keys, nil
}

func classifyKey(pub any) (publicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return publicKey{}, fmt.Errorf("RSA key of %d bits is too weak (at least %d)", k.N.BitLen(), minRSABits)
		}
		return publicKey{keyRSA, k}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return publicKey{keyP256, k}, nil
		case elliptic.P384():
			return publicKey{keyP384, k}, nil
		case elliptic.P521():
			return publicKey{keyP521, k}, nil
		}
		return publicKey{}, fmt.Errorf("EC curve %s is not supported", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return publicKey{keyEd25519, k}, nil
	}
	return publicKey{}, fmt.Errorf("unsupported key type %T", pub)
}

// keyFor is golang-jwt's key function: the keys for the token's algorithm.
// The parser has already refused algorithms outside the allow-list.
func (v *verifier) keyFor(t *jwt.Token) (any, error) {
	if k, ok := v.keysByAlg[t.Method.Alg()]; ok {
		return k, nil
	}
	return nil, errAlgNotAllowed
}

var errAlgNotAllowed = errors.New("algorithm not allowed")

// bearerToken extracts the token from the Authorization header. The scheme is
// matched case-insensitively (RFC 6750); nothing else carries a token.
func bearerToken(r *http.Request) (string, *problem) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", newProblem(kindMissingToken, "send the token as Authorization: Bearer <token>").
			withHeader("WWW-Authenticate", `Bearer realm="ownid_sessions"`)
	}
	if len(values) > 1 {
		return "", invalidToken("more than one Authorization header")
	}
	h := values[0]
	if len(h) > maxAuthorizationHeader {
		return "", invalidToken("the Authorization header is too large")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", invalidToken("the Authorization scheme must be Bearer")
	}
	token = strings.TrimSpace(token)
	if strings.Count(token, ".") != 2 {
		return "", invalidToken("the token is not a JWS compact serialization")
	}
	return token, nil
}

func invalidToken(detail string) *problem {
	return newProblem(kindInvalidToken, detail).
		withHeader("WWW-Authenticate", `Bearer realm="ownid_sessions", error="invalid_token"`)
}

// verify checks the request's bearer token and returns its claims. The
// problem's detail says why a token failed, never what it held.
func (v *verifier) verify(r *http.Request) (jwt.MapClaims, *problem) {
	raw, p := bearerToken(r)
	if p != nil {
		return nil, p
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keyFor); err != nil {
		return nil, invalidToken(tokenFailure(err))
	}
	if len(v.issuers) > 0 {
		iss, _ := claims.GetIssuer()
		if !slices.Contains(v.issuers, iss) {
			return nil, invalidToken("the token's issuer is not accepted")
		}
	}
	return claims, nil
}

// tokenFailure names why golang-jwt refused a token, in words safe to send.
func tokenFailure(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "the token's signature does not verify"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token's algorithm is not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token lacks a required claim (exp, or aud when an audience is configured)"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token was issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "the token's claims are not valid"
	}
	return "the token cannot be verified"
}

// subject returns the account a token speaks for: its sub claim.
func subject(claims jwt.MapClaims) (string, *problem) {
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return "", invalidToken("the token has no sub claim")
	}
	return sub, nil
}
