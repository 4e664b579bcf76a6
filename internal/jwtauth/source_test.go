package jwtauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func sourcesVerifier(t *testing.T, sources ...Source) *Verifier {
	t.Helper()
	v, err := NewProviders([]*Config{{Algorithms: []string{"HS256"}, Secret: testSecret}}, sources, testEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestTokenSources: the first source the request carries is read, in the
// configured order; a malformed token there is refused, not passed over.
func TestTokenSources(t *testing.T) {
	tok := tokenFor(t, "src-user")
	v := sourcesVerifier(t, Source{From: FromHeader}, Source{From: FromHeader, Name: "X-Token"},
		Source{From: FromCookie, Name: "session"}, Source{From: FromQuery, Name: "access_token"})
	tests := map[string]struct {
		prepare func(r *http.Request)
		reason  string // "" accepted
	}{
		"authorization":         {func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, ""},
		"custom header, bare":   {func(r *http.Request) { r.Header.Set("X-Token", tok) }, ""},
		"custom header, bearer": {func(r *http.Request) { r.Header.Set("X-Token", "bearer "+tok) }, ""},
		"cookie":                {func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "session", Value: tok}) }, ""},
		"query":                 {func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok }, ""},
		"none":                  {func(r *http.Request) {}, "missing"},
		"other cookie":          {func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "other", Value: tok}) }, "missing"},
		"first wins, malformed": {func(r *http.Request) {
			r.Header.Set("Authorization", "Basic x")
			r.URL.RawQuery = "access_token=" + tok
		}, "malformed"},
		"two cookies":    {func(r *http.Request) { r.Header.Add("Cookie", "session="+tok+"; session="+tok) }, "malformed"},
		"two in query":   {func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok + "&access_token=" + tok }, "malformed"},
		"empty in query": {func(r *http.Request) { r.URL.RawQuery = "access_token=" }, "malformed"},
		"too large":      {func(r *http.Request) { r.Header.Set("X-Token", strings.Repeat("a.", maxToken)) }, "malformed"},
	}
	for name, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		tt.prepare(r)
		_, e := v.Verify(r)
		switch {
		case tt.reason == "" && e != nil:
			t.Errorf("%s: refused %v", name, e)
		case tt.reason != "" && (e == nil || e.Reason != tt.reason):
			t.Errorf("%s: %v, want %s", name, e, tt.reason)
		}
	}
	_, e := v.Verify(httptest.NewRequest("GET", "/", nil))
	for _, want := range []string{"Authorization: Bearer", "X-Token header", "session cookie", "access_token query"} {
		if e == nil || !strings.Contains(e.Detail, want) {
			t.Errorf("missing token detail %v lacks %q", e, want)
		}
	}
}

// TestQueryTokenStripped: a token in the query leaves the URL and the
// RequestURI, whether it verifies or not and whichever source was read;
// the other parameters keep their bytes and order.
func TestQueryTokenStripped(t *testing.T) {
	tok := tokenFor(t, "q-user")
	v := sourcesVerifier(t, Source{From: FromHeader}, Source{From: FromQuery, Name: "access_token"})
	tests := map[string]struct{ query, want string }{
		"alone":        {"access_token=" + tok, ""},
		"among others": {"a=1&access_token=" + tok + "&b=%2F+x", "a=1&b=%2F+x"},
		"escaped name": {"access%5Ftoken=" + tok + "&c=3", "c=3"},
		"tampered":     {"z=0&access_token=" + tamper(tok), "z=0"},
		"twice":        {"access_token=" + tok + "&access_token=x", ""},
		"no token":     {"a=1&b=2", "a=1&b=2"},
		"similar name": {"access_token2=x", "access_token2=x"},
	}
	for name, tt := range tests {
		r := httptest.NewRequest("GET", "/p/accounts/sessions?"+tt.query, nil)
		v.Verify(r)
		if r.URL.RawQuery != tt.want {
			t.Errorf("%s: query %q, want %q", name, r.URL.RawQuery, tt.want)
		}
		wantURI := "/p/accounts/sessions"
		if tt.want != "" {
			wantURI += "?" + tt.want
		}
		if r.RequestURI != wantURI {
			t.Errorf("%s: RequestURI %q, want %q", name, r.RequestURI, wantURI)
		}
	}
	// Stripped even when the header is the source read.
	r := httptest.NewRequest("GET", "/x?access_token=leak", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if _, e := v.Verify(r); e != nil || strings.Contains(r.URL.String()+r.RequestURI, "leak") {
		t.Errorf("header token with a query token: %v, URL %s", e, r.URL)
	}
}

func TestSourceCheck(t *testing.T) {
	for _, src := range []Source{{From: "body"}, {From: FromCookie}, {From: FromQuery}} {
		if _, err := NewProviders([]*Config{{Algorithms: []string{"HS256"}, Secret: testSecret}}, []Source{src}, testEnv(t)); err == nil || !strings.HasPrefix(err.Error(), "token_from: ") {
			t.Errorf("%+v: error %v", src, err)
		}
	}
}
