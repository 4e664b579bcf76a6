package jwtauth

import (
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Config says how bearer tokens are verified. Tokens must carry exp; the
// "none" algorithm is never accepted; a key is only used with the algorithms
// its type allows. Its JSON is the handler's "jwt" object.
type Config struct {
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

// Defaults, documented on the fields they fill.
const (
	defaultLeeway              = 30 * time.Second
	defaultCacheSize           = 10000
	defaultCacheTTL            = 5 * time.Minute
	defaultJWKSRefresh         = time.Hour
	defaultJWKSRefetchInterval = 5 * time.Minute
	defaultJWKSWait            = 2 * time.Second
)

// Bounds on what is parsed at all: anything larger is refused before any
// decoding work.
const (
	maxAuthorizationHeader = 8 << 10
	minHMACSecret          = 32
	minRSABits             = 2048
)
