package jwtauth

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// provider verifies the tokens of one Config: its own algorithms, keys, JWK
// Sets (with their own client and refetch limiter), issuers, audiences,
// leeway and claim rules. A token is only ever checked against the keys of
// the one provider it was matched to.
type provider struct {
	name    string
	parser  *jwt.Parser
	issuers []string
	leeway  time.Duration
	// keysByAlg holds, for each allowed algorithm, the static keys that may
	// verify it: what the key function hands golang-jwt.
	keysByAlg map[string]any
	jwks      *keySets // nil without JWK Sets
	rules     []claimRule
	cacheSize int
	cacheTTL  time.Duration
	// sessionClaim names the claim that binds a token to a session; ""
	// for none.
	sessionClaim    string
	sessionCheckTTL time.Duration
}

// settingError names the provider and the setting at fault: "jwt alg: ..."
// for the only, unnamed provider, "jwt <name> alg: ..." otherwise.
func settingError(name, setting, format string, args ...any) error {
	prefix := "jwt"
	if name != "" {
		prefix += " " + name
	}
	if setting != "" {
		prefix += " " + setting
	}
	return fmt.Errorf(prefix+": "+format, args...)
}

// keySetError names the provider before an error of the JWK Sets, which
// names its setting itself ("jwks: ...").
func keySetError(name string, err error) error {
	if name != "" {
		return fmt.Errorf("jwt %s %v", name, err)
	}
	return fmt.Errorf("jwt %v", err)
}

// newProvider checks cfg, loads its keys and fetches its JWK Sets (those
// named by jwks, and the one discovery names). onChange is called when a
// set's keys change.
func newProvider(cfg *Config, env Env, onChange func()) (*provider, error) {
	name := cfg.Name
	fail := func(setting, format string, args ...any) error {
		return settingError(name, setting, format, args...)
	}
	if len(cfg.Algorithms) == 0 {
		return nil, fail("alg", "at least one algorithm is required")
	}
	repl := env.Replace
	urls := make([]string, 0, len(cfg.JWKS)+1)
	for _, u := range cfg.JWKS {
		u = repl(u)
		if err := checkJWKSURL(u); err != nil {
			return nil, keySetError(name, err)
		}
		urls = append(urls, u)
	}
	limits := fetchLimits{maxBytes: cmp.Or(cfg.JWKSMaxBytes, defaultJWKSMaxBytes), maxKeys: cmp.Or(cfg.JWKSMaxKeys, defaultJWKSMaxKeys)}
	if limits.maxBytes < 0 {
		return nil, fail("jwks_max_bytes", "must be positive, got %d", limits.maxBytes)
	}
	if limits.maxKeys < 0 {
		return nil, fail("jwks_max_keys", "must be positive, got %d", limits.maxKeys)
	}
	wait := cmp.Or(time.Duration(cfg.JWKSWait), defaultJWKSWait)
	issuers := cfg.Issuers
	if cfg.Discover != "" {
		issuer := repl(cfg.Discover)
		jwksURI, err := discover(env.Ctx, issuer, limits, max(wait, discoveryTimeout))
		if err != nil {
			return nil, fail("discover", "%v", err)
		}
		urls = append(urls, jwksURI)
		if len(issuers) == 0 {
			issuers = []string{issuer}
		}
	}
	byKind := map[keyKind][]any{}
	if cfg.Secret != "" {
		secret := repl(cfg.Secret)
		if len(secret) < minHMACSecret {
			return nil, fail("secret", "must be at least %d bytes, got %d (is the environment variable it names set?)", minHMACSecret, len(secret))
		}
		byKind[keyHMAC] = append(byKind[keyHMAC], []byte(secret))
	}
	for _, file := range cfg.Keys {
		keys, err := loadPublicKeys(repl(file))
		if err != nil {
			return nil, fail("key", "%v", err)
		}
		for _, k := range keys {
			byKind[k.kind] = append(byKind[k.kind], k.key)
		}
	}
	if len(byKind) == 0 && len(urls) == 0 {
		return nil, fail("", "no key source: set secret, key, jwks or discover")
	}

	p := &provider{name: name, issuers: issuers, keysByAlg: map[string]any{}, rules: rulesFrom(cfg.Require)}
	used := map[keyKind]bool{}
	for _, alg := range cfg.Algorithms {
		if strings.EqualFold(alg, "none") {
			return nil, fail("alg", "'none' is never accepted")
		}
		kind, ok := algorithms[alg]
		if !ok {
			return nil, fail("alg", "unknown algorithm %q (want one of HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA)", alg)
		}
		keys := byKind[kind]
		switch len(keys) {
		case 0:
			if kind != keyHMAC && len(urls) > 0 {
				break // the key sets may serve it
			}
			return nil, fail("alg", "%s needs %s, and none is configured", alg, keyKindNames[kind])
		case 1:
			p.keysByAlg[alg] = keys[0]
		default:
			set := jwt.VerificationKeySet{}
			for _, k := range keys {
				set.Keys = append(set.Keys, k)
			}
			p.keysByAlg[alg] = set
		}
		used[kind] = true
	}
	for kind := range byKind {
		if !used[kind] {
			return nil, fail("alg", "%s is configured but no allowed algorithm uses it", keyKindNames[kind])
		}
	}

	p.leeway = defaultLeeway
	if cfg.Leeway != nil {
		p.leeway = time.Duration(*cfg.Leeway)
	}
	if p.leeway < 0 {
		return nil, fail("leeway", "must not be negative, got %s", p.leeway)
	}
	for claim, values := range cfg.Require {
		if claim == "" || len(values) == 0 {
			return nil, fail("require", "needs a claim name and a value")
		}
	}
	p.cacheSize = defaultCacheSize
	if cfg.CacheSize != nil {
		p.cacheSize = *cfg.CacheSize
	}
	if p.cacheSize < 0 {
		return nil, fail("cache_size", "must not be negative, got %d", p.cacheSize)
	}
	if c := cfg.SessionClaim; c != strings.TrimSpace(c) || strings.ContainsAny(c, "\x00") {
		return nil, fail("session_claim", "%q is not a claim name", c)
	}
	p.sessionClaim, p.sessionCheckTTL = cfg.SessionClaim, time.Duration(cfg.SessionCheckTTL)
	if p.sessionCheckTTL < 0 {
		return nil, fail("session_check_ttl", "must not be negative, got %s", p.sessionCheckTTL)
	}
	if p.sessionCheckTTL > 0 && p.sessionClaim == "" {
		return nil, fail("session_check_ttl", "needs session_claim")
	}
	p.cacheTTL = cmp.Or(time.Duration(cfg.CacheTTL), defaultCacheTTL)
	if p.cacheTTL < 0 {
		return nil, fail("cache_ttl", "must be positive, got %s", p.cacheTTL)
	}

	if len(urls) > 0 {
		settings := jwksSettings{
			refresh:         cmp.Or(time.Duration(cfg.JWKSRefresh), defaultJWKSRefresh),
			refetchInterval: cmp.Or(time.Duration(cfg.JWKSRefetchInterval), defaultJWKSRefetchInterval),
			wait:            wait,
			client:          &http.Client{Timeout: jwksBackgroundTimeout, Transport: limitedTransport{maxBytes: limits.maxBytes}},
			maxKeys:         limits.maxKeys,
		}
		if settings.refresh < 0 || settings.refetchInterval < 0 || settings.wait < 0 {
			return nil, fail("jwks_refresh, jwks_refetch_interval, jwks_wait", "must be positive")
		}
		var err error
		if p.jwks, err = newKeySets(env.Ctx, urls, settings, env.Logger.With(providerField(name)...), env.Observer, onChange); err != nil {
			return nil, keySetError(name, err)
		}
	}

	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(cfg.Algorithms)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(p.leeway),
		jwt.WithTimeFunc(env.Now),
	}
	if len(cfg.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audiences...))
	}
	p.parser = jwt.NewParser(opts...)
	return p, nil
}

// keyFor is golang-jwt's key function: for a token with a kid, the key of
// that kid from this provider's key sets, if the type of that key fits the
// algorithm; otherwise its static keys for the token's algorithm. The parser
// has already refused algorithms outside the allow-list.
func (p *provider) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kind := algorithms[alg]
	if kid, _ := t.Header["kid"].(string); kid != "" && kind != keyHMAC && p.jwks != nil {
		if key, err := p.jwks.key(ctx, t); err == nil {
			if k, err := classifyKey(key); err != nil || k.kind != kind {
				return nil, errKeyTypeMismatch
			}
			return key, nil
		}
	}
	if k, ok := p.keysByAlg[alg]; ok {
		return k, nil
	}
	return nil, errNoKey
}

// verify checks the token's signature, times, audience and issuer with this
// provider's settings, and returns what it says.
func (p *provider) verify(ctx context.Context, raw string) (*Identity, *Error) {
	claims := jwt.MapClaims{}
	var critical bool
	keyFor := func(t *jwt.Token) (any, error) {
		// RFC 7515 §4.1.11: a token that lists extensions its reader
		// must understand is refused; this module understands none.
		if _, critical = t.Header["crit"]; critical {
			return nil, errCritical
		}
		return p.keyFor(ctx, t)
	}
	if _, err := p.parser.ParseWithClaims(raw, claims, keyFor); err != nil {
		if critical {
			return nil, Invalid("critical_header", "the token names critical header extensions (crit), which are not understood")
		}
		return nil, tokenFailure(err)
	}
	if len(p.issuers) > 0 {
		iss, _ := claims.GetIssuer()
		if !slices.Contains(p.issuers, iss) {
			return nil, Invalid("issuer", "the token's issuer is not accepted")
		}
	}
	id := newIdentity(claims)
	id.Provider, id.provider = p.name, p
	if p.sessionClaim != "" {
		if v, bound := claims[p.sessionClaim]; bound {
			sid, ok := v.(string)
			if !ok || sid == "" {
				return nil, Invalid("session_claim", "the token's "+p.sessionClaim+" claim does not name a session")
			}
			id.Session, id.SessionCheckTTL = sid, p.sessionCheckTTL
		}
	}
	return id, nil
}
