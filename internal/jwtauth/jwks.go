package jwtauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
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

var errJWKSNotLoaded = errors.New("the key set has not been fetched yet")

// jwksSource is one remote JWK Set. Fetching, parsing, the periodic refresh
// and the rate-limited refetch for unknown key ids are MicahParks/jwkset's
// and keyfunc's; this adds what the handler needs around them: a bounded
// first fetch that never stops Caddy, retries when it failed, and a signal
// when the keys change so that the token cache can be emptied.
type jwksSource struct {
	url       string
	redacted  string // the URL without credentials or query, for logs
	cfg       jwksSettings
	logger    *zap.Logger
	observer  Observer
	onChange  func()
	keys      atomic.Pointer[keyfunc.Keyfunc]
	lastError atomic.Pointer[string]
	lastFetch atomic.Int64 // unix ms of the last successful fetch
	keyCount  atomic.Int64 // keys in the last set fetched
}

type jwksSettings struct {
	refresh         time.Duration
	refetchInterval time.Duration
	wait            time.Duration
	client          *http.Client
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

// newJWKSSource fetches the set once, bounded by the request wait, and keeps
// it fresh until ctx ends. If the first fetch fails it logs loudly and keeps
// retrying in the background: tokens whose kid it would serve are refused
// meanwhile, and every other key source keeps working.
func newJWKSSource(ctx context.Context, rawURL string, cfg jwksSettings, logger *zap.Logger, observer Observer, onChange func()) *jwksSource {
	u, _ := url.Parse(rawURL) // checked by checkJWKSURL
	s := &jwksSource{url: rawURL, redacted: redactURL(u), cfg: cfg, logger: logger, observer: observer, onChange: onChange}
	if err := s.start(ctx, cfg.wait); err != nil {
		s.logger.Error("JWKS could not be fetched; tokens signed with its keys are refused until it can be, retrying in the background",
			zap.String("jwks", s.redacted), zap.String("error", s.redact(err)))
		go s.retry(ctx)
	}
	return s
}

// start builds the jwkset storage and the keyfunc over it. It succeeds only
// if the first fetch does; a failed attempt leaves nothing running.
func (s *jwksSource) start(ctx context.Context, firstFetch time.Duration) error {
	attempt, cancel := context.WithCancel(ctx)
	watched := &watchedStorage{Storage: jwkset.NewMemoryStorage(), source: s}
	storage, err := jwkset.NewStorageFromHTTP(s.url, jwkset.HTTPClientStorageOptions{
		Client:      s.cfg.client,
		Ctx:         attempt,
		HTTPTimeout: firstFetch,
		RefreshErrorHandler: func(_ context.Context, err error) {
			s.recordError(err)
			s.logger.Warn("JWKS refresh failed; keeping the keys fetched before", zap.String("jwks", s.redacted), zap.String("error", s.redact(err)))
		},
		RefreshInterval: s.cfg.refresh,
		Storage:         watched,
	})
	if err != nil {
		cancel()
		s.recordError(err)
		return err
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{s.url: storage},
		RateLimitWaitMax:  s.cfg.wait,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(s.cfg.refetchInterval), 1),
	})
	if err != nil {
		cancel()
		return err
	}
	kf, err := keyfunc.New(keyfunc.Options{
		Ctx:     attempt,
		Storage: client,
		// A key marked for encryption never verifies a signature; most
		// sets leave "use" out.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
	if err != nil {
		cancel()
		return err
	}
	s.keys.Store(&kf)
	// The attempt's context now carries the refresh goroutine; it ends
	// with the config's.
	context.AfterFunc(ctx, cancel)
	return nil
}

// retry starts the source again with backoff until it works or ctx ends.
func (s *jwksSource) retry(ctx context.Context) {
	delay := jwksRetryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if err := s.start(ctx, jwksBackgroundTimeout); err == nil {
			s.logger.Info("JWKS fetched after earlier failures", zap.String("jwks", s.redacted))
			return
		}
		delay = min(2*delay, jwksRetryMax, s.cfg.refresh)
	}
}

func (s *jwksSource) recordError(err error) {
	s.observer.JWKSFetch(false)
	msg := s.redact(err)
	s.lastError.Store(&msg)
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

// key returns the set's key for the token's kid, refetching the set (rate
// limited, bounded by the wait) when the kid is unknown. keyfunc also checks
// that a JWK's own alg, when present, is the token's.
func (s *jwksSource) key(ctx context.Context, t *jwt.Token) (any, error) {
	kf := s.keys.Load()
	if kf == nil {
		return nil, errJWKSNotLoaded
	}
	return (*kf).KeyfuncCtx(ctx)(t)
}

// watchedStorage is the in-memory JWK storage of one source; it notices when
// a fetch brings a different set of keys.
type watchedStorage struct {
	jwkset.Storage
	source *jwksSource

	mu          sync.Mutex
	fingerprint [sha256.Size]byte
}

func (w *watchedStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	w.source.observer.JWKSFetch(true)
	w.source.lastFetch.Store(time.Now().UnixMilli())
	w.source.keyCount.Store(int64(len(given)))
	if err := w.Storage.KeyReplaceAll(ctx, given); err != nil {
		return err
	}
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

// JWKS describes the verifier's JWK Sets, in the order of the config.
func (v *Verifier) JWKS() []JWKSStatus {
	var out []JWKSStatus
	for _, src := range v.jwks {
		st := JWKSStatus{URL: src.redacted, Loaded: src.keys.Load() != nil, Keys: src.keyCount.Load()}
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
