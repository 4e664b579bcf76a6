// Package jwtauth verifies bearer JWTs: it extracts the token from the
// Authorization header (or another header, a cookie or the query), matches
// it to one of several providers by its issuer, checks it with golang-jwt against an allow-list of
// algorithms, static keys (an HMAC secret, PEM public keys) and remote JWK
// Sets, holds it to its issuer, audience, times and claim requirements, and
// remembers the tokens that verified. It knows nothing of the handler that
// uses it: a refusal is an *Error carrying its status, and what happens is
// reported to an Observer.
package jwtauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"go.uber.org/zap"
)

// Observer is told what the verifier does, for the metrics. Its methods are
// called on the request path and from background fetches: they must be
// cheap and safe for concurrent use. Refusals are not reported here: each
// one is an *Error, whose Reason the caller counts where it answers.
type Observer interface {
	// CacheLookup reports a lookup in the verified-token cache.
	CacheLookup(hit bool)
	// JWKSFetch reports a fetch of a JWK Set by its result: FetchOK when
	// it brought a set, FetchTooLarge when the set (or the discovery
	// document) was over its bounds, FetchError otherwise.
	JWKSFetch(result string)
}

// The results JWKSFetch reports.
const (
	FetchOK       = "ok"
	FetchError    = "error"
	FetchTooLarge = "too_large"
)

type nopObserver struct{}

func (nopObserver) CacheLookup(bool) {}
func (nopObserver) JWKSFetch(string) {}

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

// Verifier checks bearer tokens for one or several providers. It is built
// once per config and is safe for concurrent use; its JWKS refreshers stop
// with Env.Ctx.
type Verifier struct {
	providers []*provider // in the order of the config
	byIssuer  map[string]*provider
	noIssuer  *provider // the provider of tokens without iss; nil if none
	sources   []Source
	cache     *tokenCache // shared by the providers; nil when off
	now       func() time.Time
	observer  Observer
}

// New is the verifier of one provider, taking the token from the
// Authorization header: NewProviders with cfg alone and no sources.
func New(cfg *Config, env Env) (*Verifier, error) {
	return NewProviders([]*Config{cfg}, nil, env)
}

// NewProviders checks the providers' configs, loads their keys, fetches
// their JWK Sets (each bounded by its provider's JWKS wait; a set that
// cannot be fetched is logged and retried in the background) and their
// discovery documents (which must be fetched), and returns the verifier. The
// token is taken from the first of sources the request carries; none means
// Authorization: Bearer. Its errors name the setting at fault, as
// "jwt [<name>] <setting>: ...".
//
// A token is matched to a provider before its signature is checked. With
// one provider, every token is; with several, the token's iss (read from
// its unverified payload only to choose) picks the provider that lists it
// in its issuers, and a token without iss goes to the provider that lists
// none. A token no provider takes is refused with reason "issuer". The kid
// is then looked up among that provider's keys only.
func NewProviders(cfgs []*Config, sources []Source, env Env) (*Verifier, error) {
	env = env.withDefaults()
	if len(cfgs) == 0 {
		return nil, fmt.Errorf("jwt: at least one provider is required")
	}
	for _, src := range sources {
		if err := src.check(); err != nil {
			return nil, fmt.Errorf("token_from: %v", err)
		}
	}
	v := &Verifier{byIssuer: map[string]*provider{}, sources: sources, now: env.Now, observer: env.Observer}
	names := map[string]bool{}
	for _, cfg := range cfgs {
		if len(cfgs) > 1 {
			if cfg.Name == "" {
				return nil, fmt.Errorf("jwt: with several providers, each needs a name")
			}
			if names[cfg.Name] {
				return nil, settingError(cfg.Name, "", "two providers have this name")
			}
			names[cfg.Name] = true
		}
		p, err := newProvider(cfg, env, v.keysChanged)
		if err != nil {
			return nil, err
		}
		v.providers = append(v.providers, p)
	}
	if len(v.providers) > 1 {
		for _, p := range v.providers {
			if len(p.issuers) == 0 {
				if v.noIssuer != nil {
					return nil, settingError(p.name, "issuer", "providers %s and %s both list no issuer: only one may take the tokens without iss", v.noIssuer.name, p.name)
				}
				v.noIssuer = p
			}
			for _, iss := range p.issuers {
				if other, dup := v.byIssuer[iss]; dup {
					return nil, settingError(p.name, "issuer", "%q is also an issuer of provider %s: a token's iss must name one provider", iss, other.name)
				}
				v.byIssuer[iss] = p
			}
		}
	}
	size, ttl := 0, time.Duration(0)
	for _, p := range v.providers {
		size, ttl = size+p.cacheSize, max(ttl, p.cacheTTL)
	}
	if size > 0 {
		v.cache = newTokenCache(size, ttl)
	}
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

// Verify takes the request's token from its sources, checks it with the
// provider it belongs to, then that provider's claim requirements, and
// returns what the token says. A token taken from the query is removed from
// the request's URL whatever the outcome. The error's detail says why a token
// failed, never what it held.
func (v *Verifier) Verify(r *http.Request) (*Identity, *Error) {
	raw, e := v.token(r)
	if e != nil {
		return nil, e
	}
	id, e := v.identify(r.Context(), raw)
	if e != nil {
		return nil, e
	}
	if e := checkRules(id.provider.rules, id); e != nil {
		return nil, e
	}
	return id, nil
}

// identify verifies a token, or finds it in the cache of tokens that
// verified. A cached token is still held to its exp and nbf, with the
// leeway of the provider that verified it.
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
			leeway := id.provider.leeway
			if !now.Before(id.Expires.Add(leeway)) {
				return nil, Invalid("expired", "the token has expired")
			}
			if !id.NotBefore.IsZero() && now.Before(id.NotBefore.Add(-leeway)) {
				return nil, Invalid("not_yet_valid", "the token is not valid yet")
			}
			return id, nil
		}
	}
	if e := wellFormed(raw); e != nil {
		return nil, e
	}
	p, e := v.providerOf(raw)
	if e != nil {
		return nil, e
	}
	id, e := p.verify(ctx, raw)
	if e != nil {
		return nil, e
	}
	if v.cache != nil && p.cacheSize > 0 {
		now := v.now()
		notAfter := id.Expires.Add(p.leeway)
		if end := now.Add(p.cacheTTL); end.Before(notAfter) {
			notAfter = end
		}
		v.cache.put(&key, id, notAfter, now, generation)
	}
	return id, nil
}

// wellFormed refuses a token whose header or payload is not exactly one
// JSON value of valid UTF-8 without repeated names (parsers disagree on
// which value of a repeated claim counts, and invalid bytes would be read
// as U+FFFD, making two subjects one), or whose iss is present but not a
// string (RFC 7519 §4.1.1). Anything else malformed is left to golang-jwt.
func wellFormed(raw string) *Error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil
	}
	for i, part := range parts[:2] {
		b, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			return nil
		}
		dec := jsontext.NewDecoder(bytes.NewReader(b))
		if _, err := dec.ReadValue(); err != nil {
			return Invalid("malformed", "the token is malformed: its header or payload is not well-formed JSON (repeated names, invalid UTF-8)")
		}
		if _, err := dec.ReadToken(); err != io.EOF {
			return Invalid("malformed", "the token is malformed: its header or payload is not one JSON value")
		}
		if i == 1 {
			var claims map[string]json.RawMessage
			if json.Unmarshal(b, &claims) != nil {
				return Invalid("malformed", "the token is malformed: its payload is not a JSON object")
			}
			if iss, ok := claims["iss"]; ok && (len(iss) == 0 || iss[0] != '"') {
				return Invalid("malformed", "the token is malformed: its iss claim is not a string")
			}
		}
	}
	return nil
}

// providerOf matches a token to its provider: the only one, or the one
// that lists the iss of its unverified payload, or for a token without iss
// the one that lists no issuer.
func (v *Verifier) providerOf(raw string) (*provider, *Error) {
	if len(v.providers) == 1 {
		return v.providers[0], nil
	}
	iss, present, ok := unverifiedIssuer(raw)
	if !ok {
		return nil, Invalid("malformed", "the token is malformed")
	}
	p := v.noIssuer
	if present {
		p = v.byIssuer[iss]
	}
	if p == nil {
		return nil, Invalid("issuer", "the token's issuer is not accepted")
	}
	return p, nil
}

// unverifiedIssuer reads iss from the token's payload without checking
// anything else: only to choose the provider that will. ok is false for a
// payload that is not base64url JSON, or an iss that is not a string.
func unverifiedIssuer(raw string) (iss string, present, ok bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", false, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false, false
	}
	var claims struct {
		Issuer *string `json:"iss"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", false, false
	}
	if claims.Issuer == nil {
		return "", false, true
	}
	return *claims.Issuer, true, true
}

// providerField names the provider in log lines, when it has a name.
func providerField(name string) []zap.Field {
	if name == "" {
		return nil
	}
	return []zap.Field{zap.String("provider", name)}
}
