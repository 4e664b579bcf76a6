// Package jwtauth verifies bearer JWTs: it extracts the token from the
// Authorization header, checks it with golang-jwt against an allow-list of
// algorithms, static keys (an HMAC secret, PEM public keys) and remote JWK
// Sets, holds it to its issuer, audience, times and claim requirements, and
// remembers the tokens that verified. It knows nothing of the handler that
// uses it: a refusal is an *Error carrying its status, and what happens is
// reported to an Observer.
package jwtauth

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// Observer is told what the verifier does, for the metrics. Its methods are
// called on the request path and from background fetches: they must be
// cheap and safe for concurrent use. Refusals are not reported here: each
// one is an *Error, whose Reason the caller counts where it answers.
type Observer interface {
	// CacheLookup reports a lookup in the verified-token cache.
	CacheLookup(hit bool)
	// JWKSFetch reports a fetch of a JWK Set: ok when it brought a set.
	JWKSFetch(ok bool)
}

type nopObserver struct{}

func (nopObserver) CacheLookup(bool) {}
func (nopObserver) JWKSFetch(bool)   {}

// Env is what a verifier takes from the configuration that loads it.
type Env struct {
	// Ctx ends the JWK Set refreshers. Default: never.
	Ctx context.Context
	// Replace fills in the placeholders of the secret, the key files and
	// the JWK Set URLs, such as {env.NAME}. Default: none, values are
	// taken as written.
	Replace func(string) string
	// Now is the clock tokens are checked against. Default: time.Now.
	Now func() time.Time
	// Logger gets the JWK Set fetch failures. Default: none.
	Logger *zap.Logger
	// Observer is told of cache lookups and JWK Set fetches. Default:
	// none.
	Observer Observer
}

// Verifier checks bearer tokens. It is built once per config and is safe for
// concurrent use; its JWKS refreshers stop with Env.Ctx.
type Verifier struct {
	parser  *jwt.Parser
	issuers []string
	leeway  time.Duration
	now     func() time.Time
	// keysByAlg holds, for each allowed algorithm, the static keys that may
	// verify it: what the key function hands golang-jwt.
	keysByAlg map[string]any
	jwks      *keySets    // nil without JWK Sets
	cache     *tokenCache // nil when off
	rules     []claimRule
	observer  Observer
}

// New checks cfg, loads its keys, fetches its JWK Sets (each bounded by the
// JWKS wait; a set that cannot be fetched is logged and retried in the
// background) and returns the verifier. Its errors name the setting at
// fault, as "jwt <setting>: ...".
func New(cfg *Config, env Env) (*Verifier, error) {
	env = env.withDefaults()
	if len(cfg.Algorithms) == 0 {
		return nil, fmt.Errorf("jwt alg: at least one algorithm is required")
	}
	repl := env.Replace
	for _, u := range cfg.JWKS {
		if err := checkJWKSURL(repl(u)); err != nil {
			return nil, fmt.Errorf("jwt %v", err)
		}
	}
	byKind := map[keyKind][]any{}
	if cfg.Secret != "" {
		secret := repl(cfg.Secret)
		if len(secret) < minHMACSecret {
			return nil, fmt.Errorf("jwt secret: must be at least %d bytes, got %d (is the environment variable it names set?)", minHMACSecret, len(secret))
		}
		byKind[keyHMAC] = append(byKind[keyHMAC], []byte(secret))
	}
	for _, file := range cfg.Keys {
		keys, err := loadPublicKeys(repl(file))
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

	v := &Verifier{issuers: cfg.Issuers, now: env.Now, keysByAlg: map[string]any{}, rules: rulesFrom(cfg.Require), observer: env.Observer}
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
		urls := make([]string, len(cfg.JWKS))
		for i, u := range cfg.JWKS {
			urls[i] = repl(u)
		}
		var err error
		if v.jwks, err = newKeySets(env.Ctx, urls, settings, env.Logger, env.Observer, v.keysChanged); err != nil {
			return nil, fmt.Errorf("jwt %v", err)
		}
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(cfg.Algorithms)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(env.Now),
	}
	if len(cfg.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audiences...))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// withDefaults fills in what the caller left out.
func (env Env) withDefaults() Env {
	if env.Ctx == nil {
		env.Ctx = context.Background()
	}
	if env.Replace == nil {
		env.Replace = func(s string) string { return s }
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Logger == nil {
		env.Logger = zap.NewNop()
	}
	if env.Observer == nil {
		env.Observer = nopObserver{}
	}
	return env
}

// keysChanged empties the token cache: a key may have been revoked.
func (v *Verifier) keysChanged() {
	if v.cache != nil {
		v.cache.clear()
	}
}

// keyFor is golang-jwt's key function: for a token with a kid, the key of
// that kid from the key sets, if the type of that key fits the algorithm;
// otherwise the static keys for the token's algorithm. The parser has
// already refused algorithms outside the allow-list.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kind := algorithms[alg]
	if kid, _ := t.Header["kid"].(string); kid != "" && kind != keyHMAC && v.jwks != nil {
		if key, err := v.jwks.key(ctx, t); err == nil {
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

// Verify checks the request's bearer token, then the claim requirements, and
// returns what the token says. The error's detail says why a token failed,
// never what it held.
func (v *Verifier) Verify(r *http.Request) (*Identity, *Error) {
	raw, e := bearerToken(r)
	if e != nil {
		return nil, e
	}
	id, e := v.identify(r.Context(), raw)
	if e != nil {
		return nil, e
	}
	if e := checkRules(v.rules, id); e != nil {
		return nil, e
	}
	return id, nil
}

// identify verifies a token, or finds it in the cache of tokens that
// verified. A cached token is still held to its exp and nbf.
func (v *Verifier) identify(ctx context.Context, raw string) (*Identity, *Error) {
	var key [sha256.Size]byte
	var generation uint64
	if v.cache != nil {
		generation = v.cache.generation.Load()
		now := v.now()
		key = sha256.Sum256([]byte(raw))
		id, ok := v.cache.get(&key, now)
		v.observer.CacheLookup(ok)
		if ok {
			if !now.Before(id.Expires.Add(v.leeway)) {
				return nil, Invalid("expired", "the token has expired")
			}
			if !id.NotBefore.IsZero() && now.Before(id.NotBefore.Add(-v.leeway)) {
				return nil, Invalid("not_yet_valid", "the token is not valid yet")
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
			return nil, Invalid("critical_header", "the token names critical header extensions (crit), which are not understood")
		}
		return nil, tokenFailure(err)
	}
	if len(v.issuers) > 0 {
		iss, _ := claims.GetIssuer()
		if !slices.Contains(v.issuers, iss) {
			return nil, Invalid("issuer", "the token's issuer is not accepted")
		}
	}
	id := newIdentity(claims)
	if v.cache != nil {
		now := v.now()
		v.cache.put(&key, id, id.Expires.Add(v.leeway), now, generation)
	}
	return id, nil
}
