package jwtauth

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// Where a Source finds the token.
const (
	FromHeader = "header"
	FromCookie = "cookie"
	FromQuery  = "query"
)

// Source is one place a request may carry its token. The sources are tried
// in order and the first one the request carries is the one read: a token
// there that is malformed is refused, not passed over.
type Source struct {
	// "header", "cookie" or "query".
	From string `json:"from"`

	// The header, cookie or query parameter. A header defaults to
	// Authorization, which must use the Bearer scheme; any other header
	// carries the bare token, or "Bearer <token>". Required for a cookie
	// or a query parameter.
	Name string `json:"name,omitempty"`
}

func (s Source) check() error {
	switch s.From {
	case FromHeader:
		return nil
	case FromCookie, FromQuery:
		if s.Name == "" {
			return fmt.Errorf("%s: needs a name", s.From)
		}
		return nil
	}
	return fmt.Errorf("unknown source %q (want header, cookie or query)", s.From)
}

func (s Source) String() string {
	switch {
	case s.From == FromHeader && s.isAuthorization():
		return "Authorization: Bearer <token>"
	case s.From == FromHeader:
		return "the " + s.Name + " header"
	}
	return "the " + s.Name + " " + s.From + " parameter"
}

func (s Source) isAuthorization() bool {
	return s.Name == "" || textproto.CanonicalMIMEHeaderKey(s.Name) == "Authorization"
}

// token takes the token from the first source the request carries. Every
// query parameter that is a source is first removed from the request's URL,
// so that the token goes no further than this package.
func (v *Verifier) token(r *http.Request) (string, *Error) {
	if len(v.sources) == 0 {
		return bearerToken(r)
	}
	queried := map[string][]string{}
	for _, src := range v.sources {
		if src.From == FromQuery {
			queried[src.Name] = nil
		}
	}
	if len(queried) > 0 {
		stripQuery(r, queried)
	}
	var described []string
	for _, src := range v.sources {
		described = append(described, src.String())
		var values []string
		switch src.From {
		case FromHeader:
			if src.isAuthorization() {
				if len(r.Header.Values("Authorization")) == 0 {
					continue
				}
				return bearerToken(r)
			}
			values = r.Header.Values(src.Name)
		case FromCookie:
			for _, c := range r.CookiesNamed(src.Name) {
				values = append(values, c.Value)
			}
		case FromQuery:
			values = queried[src.Name]
		}
		if len(values) == 0 {
			continue
		}
		return bareToken(src, values)
	}
	return "", missing("send the token as " + strings.Join(described, ", or "))
}

// bareToken checks the one value of a source other than Authorization: a
// token, or "Bearer <token>".
func bareToken(src Source, values []string) (string, *Error) {
	if len(values) > 1 {
		return "", Invalid("malformed", "more than one token in "+src.String())
	}
	token := strings.TrimSpace(values[0])
	if len(token) > maxToken {
		return "", Invalid("malformed", "the token in "+src.String()+" is too large")
	}
	if scheme, rest, ok := strings.Cut(token, " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(rest)
	}
	if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \t") {
		return "", Invalid("malformed", "the token is not a JWS compact serialization")
	}
	return token, nil
}

// stripQuery removes every parameter named in params from the request's
// query, in r.URL and r.RequestURI alike, and records in params the values
// it removed. The other parameters keep their bytes and their order.
func stripQuery(r *http.Request, params map[string][]string) {
	raw := r.URL.RawQuery
	if raw == "" {
		return
	}
	kept := make([]string, 0, strings.Count(raw, "&")+1)
	removed := false
	for pair := range strings.SplitSeq(raw, "&") {
		k, val, _ := strings.Cut(pair, "=")
		if key, err := url.QueryUnescape(k); err == nil {
			if _, ok := params[key]; ok {
				if val, err = url.QueryUnescape(val); err == nil {
					params[key] = append(params[key], val)
				} else {
					params[key] = append(params[key], "") // refused as malformed
				}
				removed = true
				continue
			}
		}
		kept = append(kept, pair)
	}
	if !removed {
		return
	}
	r.URL.RawQuery = strings.Join(kept, "&")
	if r.RequestURI != "" {
		path, _, _ := strings.Cut(r.RequestURI, "?")
		if r.URL.RawQuery != "" {
			path += "?" + r.URL.RawQuery
		}
		r.RequestURI = path
	}
}
