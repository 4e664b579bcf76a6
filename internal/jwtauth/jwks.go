package jwtauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

const (
	// jwksBackgroundTimeout bounds the fetches no request waits on.
	jwksBackgroundTimeout = 30 * time.Second
	// jwksRetryFirst and jwksRetryMax pace the retries of a JWKS that could
	// not be fetched at start.
	jwksRetryFirst = 250 * time.Millisecond
	jwksRetryMax   = time.Minute
)

type jwksSettings struct {
	refresh         time.Duration
	refetchInterval time.Duration
	wait            time.Duration
	client          *http.Client // bounds the bytes read (limitedTransport)
	maxKeys         int
}

// keySets are the JWK Sets of one config behind one MicahParks/jwkset HTTP
// client, which does the fetching, parsing, periodic refresh and the
// rate-limited refetch for unknown key ids: one storage per URL, each
// refreshed in the background; one limiter for the refetches, which fetch
// every set again until one holds the kid; one keyfunc over the client.
type keySets struct {
	sources []*jwksSource // in the order of the config
	keys    keyfunc.Keyfunc
}

// newKeySets fetches each set once, bounded by the request wait, and keeps
// them fresh until ctx ends. A set whose first fetch fails is logged loudly
// and fetched again in the background: tokens whose kid it would serve are
// refused meanwhile, and every other key source keeps working.
func newKeySets(ctx context.Context, urls []string, cfg jwksSettings, logger *zap.Logger, observer Observer, onChange func()) (*keySets, error) {
	ks := &keySets{}
	stores := make(map[string]jwkset.Storage, len(urls))
	for _, raw := range urls {
		if _, dup := stores[raw]; dup {
			continue
		}
		src := newJWKSSource(raw, cfg, logger, observer, onChange)
		store, err := src.start(ctx)
		if err != nil {
			return nil, fmt.Errorf("jwks: %s: %s", src.redacted, src.redact(err))
		}
		stores[raw] = store
		ks.sources = append(ks.sources, src)
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          stores,
		RateLimitWaitMax:  cfg.wait,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.refetchInterval), 1),
	})
	if err != nil {
		return nil, fmt.Errorf("jwks: %v", err)
	}
	ks.keys, err = keyfunc.New(keyfunc.Options{
		Ctx:     ctx,
		Storage: client,
		// A key marked for encryption never verifies a signature; most
		// sets leave "use" out.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		return nil, fmt.Errorf("jwks: %v", err)
	}
	return ks, nil
}

// key returns the key of the token's kid from the sets, fetching them again
// (rate limited, bounded by the wait) when no set knows the kid. keyfunc
// also checks that a JWK's own alg, when present, is the token's.
func (ks *keySets) key(ctx context.Context, t *jwt.Token) (any, error) {
	return ks.keys.KeyfuncCtx(ctx)(t)
}

// jwksSource is one remote JWK Set of the client. It adds what the handler
// needs around jwkset's storage: a bounded first fetch that never stops
// Caddy, retries when it failed, a signal when the keys change so that the
// token cache can be emptied, and its state for the admin endpoint.
type jwksSource struct {
	url       string
	redacted  string // the URL without credentials or query, for logs
	cfg       jwksSettings
	logger    *zap.Logger
	observer  Observer
	onChange  func()
	keys      *watchedStorage // what every fetch of this URL writes to
	lastError atomic.Pointer[string]
	lastFetch atomic.Int64 // unix ms of the last successful fetch
	keyCount  atomic.Int64 // keys in the last set fetched
}

func newJWKSSource(rawURL string, cfg jwksSettings, logger *zap.Logger, observer Observer, onChange func()) *jwksSource {
	u, _ := url.Parse(rawURL) // checked by checkJWKSURL
	s := &jwksSource{url: rawURL, redacted: redactURL(u), cfg: cfg, logger: logger, observer: observer, onChange: onChange}
	s.keys = &watchedStorage{Storage: jwkset.NewMemoryStorage(), source: s}
	return s
}

// start makes the set's jwkset storage, which fetches it once (bounded by
// the wait) and then every refresh interval until ctx ends. A failed first
// fetch leaves the storage empty, but in place: it is retried here in the
// background, and by the client's refetches.
func (s *jwksSource) start(ctx context.Context) (jwkset.Storage, error) {
	store, err := jwkset.NewStorageFromHTTP(s.url, jwkset.HTTPClientStorageOptions{
		Client:                    s.cfg.client,
		Ctx:                       ctx,
		HTTPTimeout:               s.cfg.wait,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       s.refreshFailed,
		RefreshInterval:           s.cfg.refresh,
		Storage:                   s.keys,
	})
	if err != nil {
		return nil, err
	}
	if !s.loaded() {
		msg := ""
		if e := s.lastError.Load(); e != nil {
			msg = *e
		}
		s.logger.Error("JWKS could not be fetched; tokens signed with its keys are refused until it can be, retrying in the background",
			zap.String("jwks", s.redacted), zap.String("error", msg))
		go s.retry(ctx)
	}
	return store, nil
}

// refreshFailed is jwkset's report of a failed fetch: the first, a periodic
// refresh or a refetch for an unknown kid.
func (s *jwksSource) refreshFailed(_ context.Context, err error) {
	s.recordError(err)
	if s.loaded() {
		s.logger.Warn("JWKS refresh failed; keeping the keys fetched before", zap.String("jwks", s.redacted), zap.String("error", s.redact(err)))
	}
}

// retry fetches the set with backoff until it has been fetched, by this or
// by the client, or ctx ends.
func (s *jwksSource) retry(ctx context.Context) {
	delay := jwksRetryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if s.loaded() {
			return
		}
		if err := s.fetch(ctx, jwksBackgroundTimeout); err == nil {
			s.logger.Info("JWKS fetched after earlier failures", zap.String("jwks", s.redacted))
			return
		}
		delay = min(2*delay, jwksRetryMax, s.cfg.refresh)
	}
}

// fetch fetches the set once into its storage, with jwkset's own fetch: a
// storage made without a refresh interval fetches once and is then dropped.
func (s *jwksSource) fetch(ctx context.Context, timeout time.Duration) error {
	_, err := jwkset.NewStorageFromHTTP(s.url, jwkset.HTTPClientStorageOptions{
		Client:      s.cfg.client,
		Ctx:         ctx,
		HTTPTimeout: timeout,
		Storage:     s.keys,
	})
	if err != nil {
		s.recordError(err)
	}
	return err
}

// loaded says whether the set was ever fetched.
func (s *jwksSource) loaded() bool { return s.lastFetch.Load() > 0 }

func (s *jwksSource) recordError(err error) {
	s.observer.JWKSFetch(fetchResult(err))
	msg := s.redact(err)
	s.lastError.Store(&msg)
}

// checkJWKSURL allows https, and http only to loopback hosts (tests, sidecars).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		// The text may hold credentials: it is not repeated.
		return fmt.Errorf("jwks: not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("jwks: %s: plain http is only allowed to a loopback host; use https", redactURL(u))
	}
	return fmt.Errorf("jwks: %s: the scheme must be https", redactURL(u))
}

func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// redact gives an error's text without the URL's credentials or query: the
// URL as configured, and as net/http prints it (password as "***"), both
// become the redacted form.
func (s *jwksSource) redact(err error) string {
	msg := err.Error()
	if u, perr := url.Parse(s.url); perr == nil && u.User != nil {
		// net/http's form, and net/url's.
		stripped := strings.Replace(u.String(), u.User.String()+"@", u.User.Username()+":***@", 1)
		msg = strings.ReplaceAll(msg, stripped, s.redacted)
		msg = strings.ReplaceAll(msg, u.Redacted(), s.redacted)
	}
	return strings.ReplaceAll(msg, s.url, s.redacted)
}

// watchedStorage is the in-memory JWK storage of one source; it notices when
// a fetch brings a different set of keys.
type watchedStorage struct {
	jwkset.Storage
	source *jwksSource

	mu          sync.Mutex
	fingerprint [sha256.Size]byte
}

// KeyReplaceAll is what every successful fetch of the set ends with. A set
// with more keys than allowed fails the fetch here, and the keys held
// before stay.
func (w *watchedStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	if limit := w.source.cfg.maxKeys; limit > 0 && len(given) > limit {
		return fmt.Errorf("%w (%d keys, at most %d)", errTooManyKeys, len(given), limit)
	}
	w.source.observer.JWKSFetch(FetchOK)
	w.source.keyCount.Store(int64(len(given)))
	if err := w.Storage.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
	w.source.lastFetch.Store(time.Now().UnixMilli())
	fp := fingerprint(given)
	w.mu.Lock()
	changed := fp != w.fingerprint
	w.fingerprint = fp
	w.mu.Unlock()
	if changed {
		w.source.onChange()
	}
	return nil
}

// fingerprint identifies a set of keys whatever their order.
func fingerprint(keys []jwkset.JWK) [sha256.Size]byte {
	parts := make([][]byte, 0, len(keys))
	for _, k := range keys {
		b, _ := json.Marshal(k.Marshal())
		parts = append(parts, b)
	}
	slices.SortFunc(parts, bytes.Compare)
	return sha256.Sum256(bytes.Join(parts, []byte{0}))
}

// JWKSStatus is the state of one JWK Set, for an operator: nothing in it is
// secret.
type JWKSStatus struct {
	// Provider is the name of the provider the set belongs to.
	Provider string
	// URL is the set's URL without credentials or query.
	URL string
	// Loaded says whether the set was ever fetched.
	Loaded bool
	// Keys counts the keys of the last set fetched.
	Keys int64
	// LastFetch is when the set was last fetched; zero if never.
	LastFetch time.Time
	// LastError is the last fetch failure, redacted; "" if none.
	LastError string
}

// JWKS describes the verifier's JWK Sets (a discovered one among them), in
// the order of the config.
func (v *Verifier) JWKS() []JWKSStatus {
	var out []JWKSStatus
	for _, p := range v.providers {
		if p.jwks != nil {
			out = append(out, p.jwks.status(p.name)...)
		}
	}
	return out
}

func (ks *keySets) status(provider string) []JWKSStatus {
	var out []JWKSStatus
	for _, src := range ks.sources {
		st := JWKSStatus{Provider: provider, URL: src.redacted, Loaded: src.loaded(), Keys: src.keyCount.Load()}
		if ms := src.lastFetch.Load(); ms > 0 {
			st.LastFetch = time.UnixMilli(ms)
		}
		if e := src.lastError.Load(); e != nil {
			st.LastError = *e
		}
		out = append(out, st)
	}
	return out
}
