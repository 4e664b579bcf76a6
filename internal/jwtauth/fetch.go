package jwtauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// discoveryTimeout bounds the fetch of a discovery document when the config
// loads (or the JWKS wait, if longer).
const discoveryTimeout = 10 * time.Second

// fetchLimits bound what one fetch of a provider's key material may bring.
type fetchLimits struct {
	maxBytes int64
	maxKeys  int
}

var (
	errTooLarge    = errors.New("the answer is larger than jwks_max_bytes")
	errTooManyKeys = errors.New("the set holds more keys than jwks_max_keys")
)

// fetchResult is the result an Observer is told for a failed fetch.
func fetchResult(err error) string {
	if errors.Is(err, errTooLarge) || errors.Is(err, errTooManyKeys) {
		return FetchTooLarge
	}
	return FetchError
}

// limitedTransport is the RoundTripper of the key fetches: it hands the
// answer's body on behind a reader that fails with errTooLarge once more
// than maxBytes have been read, so that no answer is ever held whole.
type limitedTransport struct {
	base     http.RoundTripper // default: http.DefaultTransport
	maxBytes int64
}

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.maxBytes {
		resp.Body.Close()
		return nil, fmt.Errorf("%w (%d bytes announced)", errTooLarge, resp.ContentLength)
	}
	resp.Body = &limitedBody{r: io.LimitReader(resp.Body, t.maxBytes+1), closer: resp.Body, left: t.maxBytes}
	return resp, nil
}

// limitedBody reads at most left bytes and fails on the one after.
type limitedBody struct {
	r      io.Reader
	closer io.Closer
	left   int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errTooLarge
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.closer.Close() }

// discover fetches issuer's OpenID Provider configuration (OpenID Connect
// Discovery 1.0 §4), bounded like a JWK Set, checks that it names issuer
// exactly, and returns its jwks_uri, checked like a jwks URL.
func discover(ctx context.Context, issuer string, limits fetchLimits, timeout time.Duration) (string, error) {
	if err := checkJWKSURL(issuer); err != nil {
		return "", errors.New(strings.Replace(err.Error(), "jwks: ", "", 1))
	}
	wellKnown := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	client := &http.Client{Transport: limitedTransport{maxBytes: limits.maxBytes}}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: cannot be fetched: %v", wellKnown, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: answered %s", wellKnown, resp.Status)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return "", fmt.Errorf("%s: not an OpenID Provider configuration: %v", wellKnown, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("%s names the issuer %q, not the configured %q (they must be equal exactly)", wellKnown, doc.Issuer, issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("%s has no jwks_uri", wellKnown)
	}
	if err := checkJWKSURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("%s: jwks_uri: %v", wellKnown, err)
	}
	return doc.JWKSURI, nil
}

// unwrapURLError drops net/http's "Get <url>:" prefix, which repeats the URL
// the caller names already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
