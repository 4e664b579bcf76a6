package jwtauth

import (
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Config is one token provider: how the tokens of one issuer (or of a few
// issuers sharing keys) are verified. Tokens must carry exp; the "none"
// algorithm is never accepted; a key is only used with the algorithms its
// type allows. Its JSON is the handler's "jwt" object, or one member of its
// "providers" list.
type Config struct {
	// The provider's name, for logs, metrics and Identity.Provider.
	// Required, and unique, when there are several providers.
	Name string `json:"name,omitempty"`

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

	// If set, the token's iss claim must be one of these. With several
	// providers a token goes to the provider that lists its iss (an issuer
	// may be listed by one provider only); a token without iss goes to the
	// one provider that lists no issuer, if there is one. Default: with
	// discover, the discovered issuer; otherwise none (any iss, when this
	// is the only provider).
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

	// An OpenID Provider's issuer URL (https, or http to a loopback host):
	// its {issuer}/.well-known/openid-configuration is fetched when the
	// config loads, its "issuer" must equal this value exactly, and its
	// jwks_uri is then used as a JWK Set, refreshed like the ones in JWKS.
	// If the discovery document cannot be fetched, the config does not
	// load. Enough as the only key source.
	Discover string `json:"discover,omitempty"`

	// The largest JWK Set or discovery document read, in bytes; a larger
	// answer fails that fetch (the keys held before stay in use).
	// Default: 1 MiB.
	JWKSMaxBytes int64 `json:"jwks_max_bytes,omitempty"`

	// The most keys a JWK Set may hold; a set with more fails that fetch
	// (the keys held before stay in use). Default: 100.
	JWKSMaxKeys int `json:"jwks_max_keys,omitempty"`

	// How often the JWK Sets are fetched again. Default: 1h.
	JWKSRefresh caddy.Duration `json:"jwks_refresh,omitempty"`

	// A token with an unknown kid makes a set be fetched again at most once
	// per this interval. Default: 5m.
	JWKSRefetchInterval caddy.Duration `json:"jwks_refetch_interval,omitempty"`

	// The longest a request waits on a JWK Set fetch. Default: 2s.
	JWKSWait caddy.Duration `json:"jwks_wait,omitempty"`

	// How many of this provider's verified tokens are remembered, so that
	// a token seen again skips the signature check; 0 leaves them out of
	// the cache. The providers share one cache, as large as their sizes
	// together. Default: 10000.
	CacheSize *int `json:"cache_size,omitempty"`

	// The longest a verified token is remembered (never past its exp).
	// Default: 5m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// Claims the token must carry, by top-level claim name: each listed
	// value must equal the claim (string, number or bool) or, for an
	// array claim, be one of its members. A valid token that fails a
	// requirement gets 403.
	Require map[string][]string `json:"require,omitempty"`

	// Binds tokens to sessions: a token that carries this claim (e.g.
	// "sid") is accepted only while the session it names is live, for the
	// token's own account and app, in the handler's store; once the
	// session is deleted or has expired, the token gets 401 session-ended
	// although it has not expired. The claim must then be a non-empty
	// string; a token without it is not bound. Default: none.
	SessionClaim string `json:"session_claim,omitempty"`

	// How long a live answer of the store about a bound session is
	// remembered (never past the session's own end), so that a busy token
	// does not read the store on every request. The trade-off: a session
	// deleted elsewhere keeps admitting its tokens here for up to this
	// long. Default: 0, every request reads the store.
	SessionCheckTTL caddy.Duration `json:"session_check_ttl,omitempty"`
}

// Defaults, documented on the fields they fill.
const (
	defaultLeeway              = 30 * time.Second
	defaultCacheSize           = 10000
	defaultCacheTTL            = 5 * time.Minute
	defaultJWKSRefresh         = time.Hour
	defaultJWKSRefetchInterval = 5 * time.Minute
	defaultJWKSWait            = 2 * time.Second
	defaultJWKSMaxBytes        = 1 << 20
	defaultJWKSMaxKeys         = 100
)

// Bounds on what is parsed at all: anything larger is refused before any
// decoding work.
const (
	maxAuthorizationHeader = 8 << 10
	maxToken               = maxAuthorizationHeader
	minHMACSecret          = 32
	minRSABits             = 2048
)
