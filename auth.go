package ownidsessions

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
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

	// URLs of JWK Sets (https, or http to a loopback host). A token whose
	// header has a kid is verified with the set's key of that kid; the
	// JWK's own alg, when present, must be the token's. Sets are fetched
	// when the config loads (a set that cannot be fetched is logged and
	// retried, and does not stop Caddy) and refreshed in the background.
	JWKS []string `json:"jwks,omitempty"`

	// How often the JWK Sets are fetched again. Default: 1h.
	JWKSRefresh caddy.Duration `json:"jwks_refresh,omitempty"`

	// A token with an unknown kid makes a set be fetched again at most once
	// per this interval. Default: 5m.
	JWKSRefetchInterval caddy.Duration `json:"jwks_refetch_interval,omitempty"`

	// The longest a request waits on a JWK Set fetch. Default: 2s.
	JWKSWait caddy.Duration `json:"jwks_wait,omitempty"`

	// How many verified tokens are remembered, so that a token seen again
	// skips the signature check; 0 turns the cache off. Default: 10000.
	CacheSize *int `json:"cache_size,omitempty"`

	// The longest a verified token is remembered (never past its exp).
	// Default: 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// Claims the token must carry, by top-level claim name: each listed
	// value must equal the claim (string, number or bool) or, for an
	// array claim, be one of its members. A valid token that fails a
	// requirement gets 403.
	Require map[string][]string `json:"require,omitempty"`
}

// Bounds on what is parsed at all: anything larger is refused before any
// decoding work.
const (
	maxAuthorizationHeader = 8 << 10
	minHMACSecret          = 32
	minRSABits             = 2048
)

// verifier checks bearer tokens. It is built once per config and is safe for
// concurrent use; its JWKS refreshers stop with the config's context.
type verifier struct {
	parser  *jwt.Parser
	issuers []string
	leeway  time.Duration
	now     func() time.Time
	// keysByAlg holds, for each allowed algorithm, the static keys that may
	// verify it: what the key function hands golang-jwt.
	keysByAlg map[string]any
	jwks      []*jwksSource
	cache     *tokenCache // nil when off
	rules     []claimRule
}

// verifierEnv is what a verifier takes from the config that loads it.
type verifierEnv struct {
	ctx    context.Context
	repl   *caddy.Replacer
	now    func() time.Time
	logger *zap.Logger
}

func newVerifier(cfg *JWTConfig, env verifierEnv) (*verifier, error) {
	if len(cfg.Algorithms) == 0 {
		return nil, fmt.Errorf("jwt alg: at least one algorithm is required")
	}
	repl := env.repl
	for _, u := range cfg.JWKS {
		if err := checkJWKSURL(repl.ReplaceKnown(u, "")); err != nil {
			return nil, fmt.Errorf("jwt %v", err)
		}
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
	if len(byKind) == 0 && len(cfg.JWKS) == 0 {
		return nil, fmt.Errorf("jwt: no key source: set secret, key or jwks")
	}

	v := &verifier{issuers: cfg.Issuers, now: env.now, keysByAlg: map[string]any{}, rules: rulesFrom(cfg.Require)}
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
			if kind != keyHMAC && len(cfg.JWKS) > 0 {
				break // the key sets may serve it
			}
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
	v.leeway = leeway
	for claim, values := range cfg.Require {
		if claim == "" || len(values) == 0 {
			return nil, fmt.Errorf("jwt require: needs a claim name and a value")
		}
	}

	cacheSize := defaultCacheSize
	if cfg.CacheSize != nil {
		cacheSize = *cfg.CacheSize
	}
	if cacheSize < 0 {
		return nil, fmt.Errorf("jwt cache_size: must not be negative, got %d", cacheSize)
	}
	cacheTTL := cmp.Or(time.Duration(cfg.CacheTTL), defaultCacheTTL)
	if cacheTTL < 0 {
		return nil, fmt.Errorf("jwt cache_ttl: must be positive, got %s", cacheTTL)
	}
	if cacheSize > 0 {
		v.cache = newTokenCache(cacheSize, cacheTTL)
	}

	if len(cfg.JWKS) > 0 {
		settings := jwksSettings{
			refresh:         cmp.Or(time.Duration(cfg.JWKSRefresh), defaultJWKSRefresh),
			refetchInterval: cmp.Or(time.Duration(cfg.JWKSRefetchInterval), defaultJWKSRefetchInterval),
			wait:            cmp.Or(time.Duration(cfg.JWKSWait), defaultJWKSWait),
			client:          &http.Client{Timeout: jwksBackgroundTimeout},
		}
		if settings.refresh < 0 || settings.refetchInterval < 0 || settings.wait < 0 {
			return nil, fmt.Errorf("jwt jwks_refresh, jwks_refetch_interval, jwks_wait: must be positive")
		}
		for _, u := range cfg.JWKS {
			v.jwks = append(v.jwks, newJWKSSource(env.ctx, repl.ReplaceKnown(u, ""), settings, env.logger, v.keysChanged))
		}
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(cfg.Algorithms)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(env.now),
	}
	if len(cfg.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audiences...))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// keysChanged empties the token cache: a key may have been revoked.
func (v *verifier) keysChanged() {
	if v.cache != nil {
		v.cache.clear()
	}
}

// keyFor is golang-jwt's key function: for a token with a kid, the key of
// that kid from the key sets, if the type of that key fits the algorithm;
// otherwise the static keys for the token's algorithm. The parser has
// already refused algorithms outside the allow-list.
func (v *verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kind := algorithms[alg]
	if kid, _ := t.Header["kid"].(string); kid != "" && kind != keyHMAC {
		for _, src := range v.jwks {
			key, err := src.key(ctx, t)
			if err != nil {
				continue
			}
			if k, err := classifyKey(key); err != nil || k.kind != kind {
				return nil, errKeyTypeMismatch
			}
			return key, nil
		}
	}
	if k, ok := v.keysByAlg[alg]; ok {
		return k, nil
	}
	return nil, errNoKey
}

var (
	errNoKey           = errors.New("no key for this token")
	errKeyTypeMismatch = errors.New("the key's type does not fit the token's algorithm")
)

// bearerToken extracts the token from the Authorization header. The scheme is
// matched case-insensitively (RFC 6750); nothing else carries a token.
func bearerToken(r *http.Request) (string, *problem) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		p := newProblem(kindMissingToken, "send the token as Authorization: Bearer <token>").
			withHeader("WWW-Authenticate", `Bearer realm="ownid_sessions"`)
		p.reason = "missing"
		return "", p
	}
	if len(values) > 1 {
		return "", invalidToken("malformed", "more than one Authorization header")
	}
	h := values[0]
	if len(h) > maxAuthorizationHeader {
		return "", invalidToken("malformed", "the Authorization header is too large")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", invalidToken("malformed", "the Authorization scheme must be Bearer")
	}
	token = strings.TrimSpace(token)
	if strings.Count(token, ".") != 2 {
		return "", invalidToken("malformed", "the token is not a JWS compact serialization")
	}
	return token, nil
}

// invalidToken is a 401 for a token that was sent; reason is the bounded
// label the failure is counted under.
func invalidToken(reason, detail string) *problem {
	p := newProblem(kindInvalidToken, detail).
		withHeader("WWW-Authenticate", `Bearer realm="ownid_sessions", error="invalid_token"`)
	p.reason = reason
	return p
}

// verify checks the request's bearer token, then the claim requirements, and
// returns what the token says. The problem's detail says why a token failed,
// never what it held.
func (v *verifier) verify(r *http.Request) (*identity, *problem) {
	raw, p := bearerToken(r)
	if p != nil {
		return nil, p
	}
	id, p := v.identify(r.Context(), raw)
	if p != nil {
		return nil, p
	}
	if p := checkRules(v.rules, id); p != nil {
		return nil, p
	}
	return id, nil
}

// identify verifies a token, or finds it in the cache of tokens that
// verified. A cached token is still held to its exp and nbf.
func (v *verifier) identify(ctx context.Context, raw string) (*identity, *problem) {
	var key [sha256.Size]byte
	var generation uint64
	if v.cache != nil {
		generation = v.cache.generation.Load()
		now := v.now()
		key = sha256.Sum256([]byte(raw))
		id, ok := v.cache.get(&key, now)
		if ok {
			metrics.tokenCache.WithLabelValues("hit").Inc()
		} else {
			metrics.tokenCache.WithLabelValues("miss").Inc()
		}
		if ok {
			if !now.Before(id.expires.Add(v.leeway)) {
				return nil, invalidToken("expired", "the token has expired")
			}
			if !id.notBefore.IsZero() && now.Before(id.notBefore.Add(-v.leeway)) {
				return nil, invalidToken("not_yet_valid", "the token is not valid yet")
			}
			return id, nil
		}
	}
	claims := jwt.MapClaims{}
	var critical bool
	keyFor := func(t *jwt.Token) (any, error) {
		// RFC 7515 §4.1.11: a token that lists extensions its reader
		// must understand is refused; this module understands none.
		if _, critical = t.Header["crit"]; critical {
			return nil, errCritical
		}
		return v.keyFor(ctx, t)
	}
	if _, err := v.parser.ParseWithClaims(raw, claims, keyFor); err != nil {
		if critical {
			return nil, invalidToken("critical_header", "the token names critical header extensions (crit), which are not understood")
		}
		return nil, invalidToken(tokenFailure(err))
	}
	if len(v.issuers) > 0 {
		iss, _ := claims.GetIssuer()
		if !slices.Contains(v.issuers, iss) {
			return nil, invalidToken("issuer", "the token's issuer is not accepted")
		}
	}
	id := newIdentity(claims)
	if v.cache != nil {
		now := v.now()
		v.cache.put(&key, id, id.expires.Add(v.leeway), now, generation)
	}
	return id, nil
}

var errCritical = errors.New("crit header")

// tokenFailure names why golang-jwt refused a token: a bounded reason for
// the metrics, and words safe to send.
func tokenFailure(err error) (reason, detail string) {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed", "the token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature", "the token's signature does not verify"
	case errors.Is(err, errNoKey):
		return "unknown_key", "no configured key verifies this token (unknown kid, or no key for its algorithm)"
	case errors.Is(err, errKeyTypeMismatch):
		return "key_type", "the key of the token's kid does not fit the token's algorithm"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable", "the token cannot be verified with the configured keys"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing_claim", "the token lacks a required claim (exp, or aud when an audience is configured)"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired", "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not_yet_valid", "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued_in_future", "the token was issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "audience", "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "claims", "the token's claims are not valid"
	}
	return "unverifiable", "the token cannot be verified"
}

// owner returns who the token speaks for in app: its issuer and subject
// together. A token without sub speaks for no account.
func (id *identity) owner(app string) (Owner, *problem) {
	if id.subject == "" {
		return Owner{}, invalidToken("no_sub", "the token has no sub claim")
	}
	if strings.ContainsRune(id.subject, 0) || strings.ContainsRune(id.issuer, 0) {
		return Owner{}, invalidToken("claims", "the token's sub or iss claim holds a NUL character")
	}
	return Owner{App: app, Issuer: id.issuer, Subject: id.subject}, nil
}
