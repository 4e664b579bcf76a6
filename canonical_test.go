package ownidsessions

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"go.uber.org/zap"
	"golang.org/x/text/width"
)

// nearMissTargets are spellings of contract paths that backends read as the
// contract's paths (Tomcat: see servlet_test.go) while they are not its
// canonical form. Each must be refused before anything else.
var nearMissTargets = []string{
	"/app/accounts;x=1/sessions",
	"/app/accounts;/sessions/s1",
	"/app;a/accounts;b/sessions;c/s1;d",
	"/app/accounts/sessions;jsessionid=1",
	"/app/accounts\\sessions",
	"/app/accounts%5csessions",
	"/app/accounts%5Csessions",
	"/app/accounts%2fsessions",
	"/app/accounts%252fsessions",
	"/app/accounts/%2573essions",
	"/app/accounts/%73essions",
	"/app/accounts%c0%afsessions",
	"/app/accounts/sessions%00",
	"/app/accounts/sessions%3f",
	"/app/accounts/sessions%3Fx=1",
	"/app/accounts/%C5%BFessions",      // U+017F LATIN SMALL LETTER LONG S
	"/app/accounts/sess%C4%B1ons",      // U+0131 LATIN SMALL LETTER DOTLESS I
	"/app/accounts/%EF%BD%93essions",   // U+FF53 FULLWIDTH LATIN SMALL LETTER S
	"/app/accounts/sessions/%E2%84%AA", // U+212A KELVIN SIGN as an id
	"//app/accounts/sessions",
	"//evil.example/accounts/sessions",
	"/app/./accounts/sessions",
	"/app/x/../accounts/sessions",
	"/x/..;/app/accounts/sessions",
	"/app/accounts/sessions/",
	"/app/accounts/sessions/%2e",
	"/app/accounts/sessions/%2e%2e",
	"/app/accounts/sessions/..",
	"/app/ACCOUNTS/sessions",
	"/app/Accounts/Sessions/s1",
	"/app/accounts/sessions/s1%3bx",
	"/app/accounts/sessions/a%2fb",
	"/app%20x/accounts/sessions",
	"/app/accounts/sessions.",            // Windows and suffix matching drop a trailing dot...
	"/app/accounts/sessions%2e",          // ...escaped or not
	"/app/accounts/sessions%20",          // ...and trailing spaces
	"/app/accounts%e0%80%afsessions",     // a three-byte overlong "/"
	"/app/accounts/session%252525252573", // escapes nested past any backend's reading
	"/app/accounts/sess%c2%adions",       // a soft hyphen...
	"/app/accounts/sess%e2%80%8bions",    // ...and a zero-width space are invisible
	"/app/accounts/se%cc%81ssions",       // a combining accent, which accent-stripping readers drop
}

// undescribedTargets are not paths of the contract however they are read.
var undescribedTargets = []string{
	"/app/accounts/sessions/abc/extra",
	"/app/accounts/sessionsX",
	"/app/accounts/sessions-archive/1",
	"/static/accounts/sessions.css",
	"/app/%E2%84%AAaccounts/sessions", // "kaccounts" is a segment of its own
	"/health",
}

func TestClassify(t *testing.T) {
	c, err := loadContract("")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/accounts/sessions", "/app/accounts/sessions", "/a/b/accounts/sessions/s1", "/my-app/accounts/sessions/AbC.~_-"} {
		if _, class := c.classify(p, "GET"); class != pathContract {
			t.Errorf("%s: class %d, want a contract path", p, class)
		}
	}
	for _, p := range nearMissTargets {
		escaped := (&url.URL{Path: mustUnescapePath(t, p), RawPath: p}).EscapedPath()
		if _, class := c.classify(escaped, "GET"); class != pathNearMiss {
			t.Errorf("%s (escaped %s): class %d, want a near miss", p, escaped, class)
		}
	}
	for _, p := range undescribedTargets {
		escaped := (&url.URL{Path: mustUnescapePath(t, p), RawPath: p}).EscapedPath()
		if _, class := c.classify(escaped, "GET"); class != pathUndescribed {
			t.Errorf("%s: class %d, want undescribed", p, class)
		}
	}
}

func mustUnescapePath(t *testing.T, p string) string {
	u, err := url.ParseRequestURI(p)
	if err != nil {
		return p
	}
	return u.Path
}

// backendReadsContractPath is an oracle written apart from route.go: how a
// lenient backend (Tomcat with decoding on, or a framework that decodes,
// then cleans, then matches without case) reads a raw target, and whether
// that lands on a path of the session contract.
var backendContractPath = regexp.MustCompile(`^(/[^/]*)*/accounts/sessions(/[^/]+)?$`)

func backendReadsContractPath(raw string) bool {
	p := raw
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	for i := 0; i < 3; i++ {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
	}
	p = strings.ReplaceAll(p, "\\", "/")
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		segs = append(segs, s)
	}
	p = path.Clean("/" + strings.Join(segs, "/"))
	return backendContractPath.MatchString(strings.ToLower(p))
}

// FuzzRawTarget: whatever the request target, either the module refuses the
// request, or the next handler sees a canonical path that was routed as
// such, or the path is undescribed and no lenient backend would read it as
// a contract path.
func FuzzRawTarget(f *testing.F) {
	for _, t := range append(append([]string{"/app/accounts/sessions", "/accounts/sessions/abc?x=1"}, nearMissTargets...), undescribedTargets...) {
		f.Add(t)
	}
	// Forward mode, undescribed pass and a valid token: the module hands on
	// every request it does not refuse, so every path is put to the test.
	h := &Handler{
		Mode:        ModeForward,
		Undescribed: UndescribedPass,
		JWT:         &jwtauth.Config{Algorithms: []string{"HS256"}, Secret: testSecret},
	}
	ctx, _ := newTestContext(f)
	if err := h.Provision(ctx); err != nil {
		f.Fatal(err)
	}
	h.logger = zap.NewNop()
	valid := tokenFor(f, "fuzz")
	f.Fuzz(func(t *testing.T, target string) {
		if len(target) > 2048 {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return // not an origin-form target a server would accept
		}
		r := httptest.NewRequest("GET", "http://localhost/", nil)
		r.URL = u
		r.RequestURI = target
		r.Header.Set("Authorization", "Bearer "+valid)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		var seen *url.URL
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			seen = r.URL
			return nil
		})
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatalf("%q: %v", target, err)
		}
		if seen == nil {
			if w.Code < 400 || w.Code >= 500 {
				t.Fatalf("%q: refused with %d", target, w.Code)
			}
			return
		}
		escaped := seen.EscapedPath()
		if _, ok := parseRoute(escaped); ok {
			if !canonicalPath(escaped) {
				t.Fatalf("%q: the next handler saw the contract path %q, not canonical", target, escaped)
			}
			return
		}
		if backendReadsContractPath(escaped) {
			t.Fatalf("%q: handed on as undescribed, but a backend reads %q as a contract path", target, escaped)
		}
	})
}

// BenchmarkClassify: what reading a path costs, canonical or not, ASCII or
// not, per byte (b.SetBytes).
func BenchmarkClassify(b *testing.B) {
	c, err := loadContract("")
	if err != nil {
		b.Fatal(err)
	}
	for name, p := range map[string]string{
		"canonical":         "/app/accounts/sessions/" + strings.Repeat("a", 100),
		"ascii-14KiB":       "/" + strings.Repeat("x%2f", 3500) + "/accounts/sessions",
		"non-ascii-14KiB":   "/" + strings.Repeat("%C3%BF", 2400) + "/accounts/sessions",
		"near-miss-escaped": "/app/accounts/%73essions",
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				c.classify(p, "GET")
			}
		})
	}
}

// TestASCIIFoldIsComplete: asciiFold's list is every rune beyond ASCII that
// width folding, case mapping or a case-folding orbit takes to ASCII.
func TestASCIIFoldIsComplete(t *testing.T) {
	general := func(r rune) rune {
		if narrow := width.LookupRune(r).Narrow(); narrow != 0 && narrow < utf8.RuneSelf {
			return narrow
		}
		for _, c := range []rune{unicode.ToLower(r), unicode.ToUpper(r)} {
			if c < utf8.RuneSelf {
				return c
			}
		}
		for c := unicode.SimpleFold(r); c != r; c = unicode.SimpleFold(c) {
			if c < utf8.RuneSelf {
				return c
			}
		}
		return r
	}
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		want := general(r)
		if want < utf8.RuneSelf {
			want = unicode.ToLower(want)
		}
		if got := unicode.ToLower(asciiFold(r)); got != want && (want < utf8.RuneSelf || got < utf8.RuneSelf) {
			t.Fatalf("U+%04X: asciiFold gives %q, Unicode's tables %q", r, got, want)
		}
	}
}
