// Package ownidsessions is a Caddy HTTP handler that puts the OwnID session
// contract at the edge: it authenticates the bearer JWT, validates the request
// against the OpenAPI document of the session API, and then either answers
// from a session store (mode serve) or hands the request to the next handler
// (mode forward).
package ownidsessions

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/maypok86/otter/v2"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"go.uber.org/zap"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
	"github.com/ownid-sessions/caddy-ownid-sessions/store/memory"

	// Registers the redis store module, so that a Caddy built with this
	// module has both stores.
	_ "github.com/ownid-sessions/caddy-ownid-sessions/store/redis"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, documented on the fields they fill.
const (
	defaultMaxBody        = 64 << 10
	defaultSessionTimeout = 30 * time.Minute
	defaultMaxSessions    = 100
	defaultIdempotencyTTL = 24 * time.Hour
	maxIdempotencyTTL     = 30 * 24 * time.Hour

	// maxSessionTimeout bounds the idle timeout a session can ask for, so
	// that lastActive+timeout can never overflow and a forgotten session
	// does not live for ever. The contract document states the same bound.
	maxSessionTimeout = 365 * 24 * time.Hour

	// maxSessionLifetime bounds a session's absolute lifetime (expiration
	// and max_lifetime) for the same reasons: ten years.
	maxSessionLifetime = 10 * 365 * 24 * time.Hour
)

// storeNamespace is the namespace of the store modules, as StoreRaw's tag
// names it.
const storeNamespace = "http.ownid_sessions.stores"

// clock is where handlers read the time. Tests that run a real Caddy in the
// test binary replace it to move time without sleeping.
var clock = time.Now

// What undescribed does with a path the document does not describe.
const (
	UndescribedPass   = "pass"
	UndescribedRefuse = "refuse"
)

// What preflight does with a CORS preflight request on a contract path.
const (
	PreflightPass   = "pass"
	PreflightRefuse = "refuse"
)

// Modes of operation.
const (
	ModeServe   = "serve"
	ModeForward = "forward"
)

// Handler implements the OwnID session contract as an HTTP handler. Requests on
// the contract's paths ({prefix}/accounts/sessions and
// {prefix}/accounts/sessions/{sessionId}) are authenticated, validated against
// the contract and answered from the session store; every other request goes
// to the next handler untouched.
type Handler struct {
	// What to do with a request that passes the checks: "serve" (the
	// default) answers the session API from the store; "forward" hands the
	// request, body intact, to the next handler (normally reverse_proxy to
	// an existing backend) and can check its answer.
	Mode string `json:"mode,omitempty"`

	// An OpenAPI 3.0 or 3.1 document to enforce instead of the embedded
	// OwnID session contract. In serve mode it must describe the session
	// API's paths; in forward mode it can describe any JSON API, and
	// requests on paths it does not describe pass through untouched.
	Spec string `json:"spec,omitempty"`

	// What to do with a request whose path the document does not describe
	// (read after canonicalization; near misses of the document's paths are
	// refused either way): "pass" hands it to the next handler untouched;
	// "refuse" answers 404 undescribed-path. Default: "pass" in serve mode,
	// "refuse" in forward mode, so that a backend only ever sees requests
	// the document describes.
	Undescribed string `json:"undescribed,omitempty"`

	// Refuse what the document does not declare: query parameters,
	// headers (beyond a list of standard ones) and body properties (at
	// every level the document describes; a session's payload is the
	// client's own and never looked into), with libopenapi-validator's
	// strict mode. Default: off.
	Strict bool `json:"strict,omitempty"`

	// The largest request body accepted, in bytes; larger bodies get 413.
	// Default: 64 KiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// How bearer tokens are verified, for a single token provider: what
	// the Caddyfile's one unnamed jwt block gives. Either this or
	// Providers is required.
	JWT *jwtauth.Config `json:"jwt,omitempty"`

	// Several token providers, each named and with its own keys, JWK Sets
	// or discovery, issuers, audiences, leeway and requirements: what
	// several (or named) jwt blocks give. A token goes to the provider
	// whose issuer list holds its iss (read, unverified, only to choose);
	// a token without iss to the one provider that lists no issuer; any
	// other token is refused (invalid-token, reason issuer). Its kid is
	// looked up among that provider's keys only. Not with JWT.
	Providers []*jwtauth.Config `json:"providers,omitempty"`

	// Where requests carry their token, tried in order; the first place a
	// request carries a token is the one read. Default: the Authorization
	// header with the Bearer scheme. A token in the query is removed from
	// the request's URL before anything else (logs, the next handler)
	// sees it.
	TokenFrom []jwtauth.Source `json:"token_from,omitempty"`

	// The session store, a module in the http.ownid_sessions.stores
	// namespace whose value implements store.Store: "memory" or "redis",
	// or one of another package's. Default: the in-process store
	// ("memory"), which keeps its sessions across config reloads.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.ownid_sessions.stores inline_key=type"`

	// The idle timeout given to a session created without one. Default: 30m.
	// At most one year.
	SessionTimeout caddy.Duration `json:"session_timeout,omitempty"`

	// The longest a session lives from its creation, however active:
	// a create's expiration (seconds) is capped to it, and a create without
	// one gets it. The session's answer then carries expiresAt. Default:
	// none (a session without expiration ends only by idling). At most ten
	// years.
	MaxLifetime caddy.Duration `json:"max_lifetime,omitempty"`

	// How long a create's Idempotency-Key is remembered (in the store, for
	// its account and app): a create sent again with the same key within
	// it gets the first answer, and one with another body gets 422.
	// Default: 24h. At most 30 days.
	IdempotencyTTL caddy.Duration `json:"idempotency_ttl,omitempty"`

	// How many live sessions one account may hold in one app; creating one
	// more gets 429. Default: 100.
	MaxSessions int `json:"max_sessions,omitempty"`

	// Binds a security scheme of the document to token providers (by
	// name): a requirement naming the scheme holds only for a token one of
	// them verified. Default: every provider satisfies every JWT scheme.
	Schemes map[string][]string `json:"scheme,omitempty"`

	// CORS preflight requests (OPTIONS with Origin and
	// Access-Control-Request-Method) on the document's paths: "pass" hands
	// them to the next handler (Caddy's header directive or a CORS plugin
	// answers them) with no token check; "refuse" answers 405. Default:
	// "pass".
	Preflight string `json:"preflight,omitempty"`

	// The resource identifier (RFC 9728) of the API this handler guards,
	// e.g. "https://api.example.com". When set, the module answers GET
	// /.well-known/oauth-protected-resource (followed by the identifier's
	// path, if any) with the resource, its authorization servers (the
	// providers' issuers) and the scopes the document uses, and every 401
	// challenge carries resource_metadata="<that URL>".
	ResourceMetadata string `json:"resource_metadata,omitempty"`

	// Security schemes of the document that a bearer JWT cannot satisfy
	// (apiKey, http basic, mutualTLS) and that another handler checks:
	// requirements naming them count them as held. Without this, a
	// document that uses such a scheme fails to load.
	IgnoreSchemes []string `json:"ignore_scheme,omitempty"`

	// Binds apps to tokens: the app (the path prefix before
	// /accounts/sessions, compared without its leading "/", OwnID's
	// {appId}) must equal this claim of the token, or one of its values
	// when the claim is an array. Any other app answers 404, as for a
	// session that does not exist, and nothing is stored or forwarded.
	// Default: none (any app, see Apps).
	AppClaim string `json:"app_claim,omitempty"`

	// The only apps served (each without the leading "/"); any other app
	// answers 404 and nothing is stored or forwarded. Default: none. With
	// neither this nor AppClaim, a token may create sessions under any app
	// prefix it makes up; set one of the two.
	Apps []string `json:"apps,omitempty"`

	// Forward mode: what to do with the next handler's answer. "off" passes
	// it on unchecked (and streaming); "report" (the default) checks it
	// against the operation's declared responses (status, content type,
	// body), logs and counts a violation, and passes it on unchanged;
	// "enforce" replaces a violating answer with 502.
	ValidateResponses string `json:"validate_responses,omitempty"`

	// The key that signs list page cursors (at least 32 bytes;
	// placeholders such as {env.OWNID_CURSOR_SECRET} work). Several Caddy
	// instances that share a Redis store and serve one API need the same
	// secret, or a cursor from one is refused by another. Default: a
	// random key made once per process (it survives config reloads).
	CursorSecret string `json:"cursor_secret,omitempty"`

	// Forward mode: the largest answer held for checking, in bytes; a
	// larger one is passed on unchecked, as it comes, and counted.
	// Default: 1 MiB.
	ResponseBuffer int64 `json:"response_buffer,omitempty"`

	verifier *jwtauth.Verifier
	contract *contract
	// The RFC 9728 metadata, when resource_metadata is set: the path it is
	// served at, the URL 401 challenges name, and the document.
	metadataPath, metadataURL string
	metadataBody              []byte
	store                     store.Store
	// liveChecks remembers live answers about sessions that tokens are
	// bound to (session_check_ttl); nil when nothing is remembered.
	liveChecks *otter.Cache[liveKey, time.Time]
	cursorKey  []byte
	logger     *zap.Logger
	now        func() time.Time
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.ownid_sessions",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills in defaults and does the expensive work once: it parses the
// contract, builds the validator, loads the keys and takes the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = clock
	}
	if h.Mode == "" {
		h.Mode = ModeServe
	}
	if h.MaxBody == 0 {
		h.MaxBody = defaultMaxBody
	}
	if h.SessionTimeout == 0 {
		h.SessionTimeout = caddy.Duration(defaultSessionTimeout)
	}
	if h.MaxSessions == 0 {
		h.MaxSessions = defaultMaxSessions
	}
	if h.IdempotencyTTL == 0 {
		h.IdempotencyTTL = caddy.Duration(defaultIdempotencyTTL)
	}
	if h.Undescribed == "" {
		h.Undescribed = UndescribedPass
		if h.Mode == ModeForward {
			h.Undescribed = UndescribedRefuse
		}
	}
	if h.ValidateResponses == "" {
		h.ValidateResponses = ResponsesReport
	}
	if h.ResponseBuffer == 0 {
		h.ResponseBuffer = defaultResponseBuffer
	}
	if err := h.checkLimits(); err != nil {
		return err
	}
	providers := h.Providers
	switch {
	case h.JWT != nil && len(providers) > 0:
		return fmt.Errorf("jwt, providers: set one of the two (jwt is the single-provider form of providers)")
	case h.JWT != nil:
		providers = []*jwtauth.Config{h.JWT}
	case len(providers) == 0:
		return fmt.Errorf("jwt: a jwt block with alg and a key source (secret, key, jwks or discover) is required")
	}

	var err error
	repl := caddy.NewReplacer()
	env := jwtauth.Env{
		Ctx:      ctx,
		Replace:  func(s string) string { return repl.ReplaceKnown(s, "") },
		Now:      h.now,
		Logger:   h.logger,
		Observer: tokenMetrics{},
	}
	if h.verifier, err = jwtauth.NewProviders(providers, h.TokenFrom, env); err != nil {
		return err
	}
	if h.contract, err = loadContract(h.Spec); err != nil {
		return err
	}
	if err := h.contract.checkSchemes(h.IgnoreSchemes); err != nil {
		return err
	}
	if err := h.checkBindings(providers); err != nil {
		return err
	}
	if err := h.provisionMetadata(providers); err != nil {
		return err
	}
	if len(h.IgnoreSchemes) > 0 {
		h.logger.Info("security schemes left to other handlers", zap.Strings("ignore_scheme", h.IgnoreSchemes))
	}
	bases, templates := h.contract.routes()
	h.logger.Info("routing the document's paths",
		zap.String("mode", h.Mode),
		zap.Strings("base_paths", bases),
		zap.Strings("paths", templates),
		zap.String("undescribed", h.Undescribed))
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if h.cursorKey, err = cursorKey(repl.ReplaceKnown(h.CursorSecret, "")); err != nil {
		return err
	}
	h.liveChecks = newLiveCache(providers)
	if h.Mode == ModeForward && h.StoreRaw == nil {
		liveHandlers.Store(h, struct{}{})
		return nil // no store: the backend keeps the sessions
	}
	if h.Mode == ModeServe && !h.contract.sessions {
		return fmt.Errorf("spec: %s does not describe %s and %s, which serve mode answers", h.Spec, collectionPath, itemPath)
	}

	if h.StoreRaw == nil {
		h.StoreRaw = caddyconfig.JSONModuleObject(memory.Store{}, "type", "memory", nil)
	}
	mod, err := ctx.LoadModule(h, "StoreRaw")
	if err != nil {
		return fmt.Errorf("store: %v", err)
	}
	st, ok := mod.(store.Store)
	if !ok {
		return fmt.Errorf("store: module %T is not a session store", mod)
	}
	h.store = st
	if h.CursorSecret == "" && h.Mode == ModeServe {
		if _, inProcess := st.(*memory.Store); !inProcess {
			h.logger.Warn("list page cursors are signed with a key of this process: set cursor_secret, the same on every instance, if several share this store")
		}
	}
	liveHandlers.Store(h, struct{}{})
	return nil
}

// checkLimits checks the settings that Provision has defaulted, before
// anything expensive is built, so that a config that cannot work fails at
// load naming its subdirective. It is the one place settings are checked:
// the Caddyfile only parses them, so a JSON config meets the same checks.
func (h *Handler) checkLimits() error {
	switch h.Mode {
	case ModeServe, ModeForward:
	default:
		return fmt.Errorf("mode: unknown mode %q (want serve or forward)", h.Mode)
	}
	switch h.ValidateResponses {
	case ResponsesOff, ResponsesReport, ResponsesEnforce:
	default:
		return fmt.Errorf("validate_responses: unknown value %q (want off, report or enforce)", h.ValidateResponses)
	}
	if h.Preflight == "" {
		h.Preflight = PreflightPass
	}
	if h.Preflight != PreflightPass && h.Preflight != PreflightRefuse {
		return fmt.Errorf("preflight: unknown value %q (want pass or refuse)", h.Preflight)
	}
	switch h.Undescribed {
	case UndescribedPass, UndescribedRefuse:
	default:
		return fmt.Errorf("undescribed: unknown value %q (want pass or refuse)", h.Undescribed)
	}
	if h.ResponseBuffer < 0 {
		return fmt.Errorf("response_buffer: must be positive, got %d", h.ResponseBuffer)
	}
	binds := bindsSessions(append([]*jwtauth.Config{h.JWT}, h.Providers...))
	if h.Mode == ModeForward && h.StoreRaw != nil && !binds {
		return fmt.Errorf("store: forward mode keeps no sessions; a store is only read there for jwt session_claim, which no jwt block sets")
	}
	if h.Mode == ModeForward && h.StoreRaw == nil && binds {
		return fmt.Errorf("jwt session_claim: in forward mode, name the store that holds the sessions (store redis ..., shared with the site that serves them)")
	}
	if h.MaxBody < 0 {
		return fmt.Errorf("max_body: must be positive, got %d", h.MaxBody)
	}
	if d := time.Duration(h.SessionTimeout); d < time.Second || d > maxSessionTimeout {
		return fmt.Errorf("session_timeout: must be between 1s and %s, got %s", maxSessionTimeout, d)
	}
	if d := time.Duration(h.MaxLifetime); d != 0 && (d < time.Second || d > maxSessionLifetime) {
		return fmt.Errorf("max_lifetime: must be between 1s and %s, got %s", maxSessionLifetime, d)
	}
	if d := time.Duration(h.IdempotencyTTL); d < time.Second || d > maxIdempotencyTTL {
		return fmt.Errorf("idempotency_ttl: must be between 1s and %s, got %s", maxIdempotencyTTL, d)
	}
	if h.MaxSessions < 0 {
		return fmt.Errorf("max_sessions: must be positive, got %d", h.MaxSessions)
	}
	for i, app := range h.Apps {
		h.Apps[i] = strings.TrimPrefix(app, "/")
		// An app is served only under its one canonical spelling: one that
		// has none could never be reached.
		if !canonicalPath("/"+h.Apps[i]) || checkApp("/"+h.Apps[i]) != nil {
			return fmt.Errorf("apps: %q is not an app a canonical path can spell (the segments before /accounts/sessions: unreserved characters A-Z a-z 0-9 - . _ ~, no empty segment, none ending in '.', at most 256 bytes)", app)
		}
	}
	if strings.TrimSpace(h.AppClaim) != h.AppClaim {
		return fmt.Errorf("app_claim: %q is not a claim name", h.AppClaim)
	}
	return nil
}

// Cleanup takes the handler off the admin endpoint's list; the store and
// the JWKS refreshers end with the config's context.
func (h *Handler) Cleanup() error {
	liveHandlers.Delete(h)
	if h.liveChecks != nil {
		h.liveChecks.StopAllGoroutines()
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
