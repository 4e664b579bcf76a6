package ownidsessions

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestServeModeRejections(t *testing.T) {
	tc := newServeTester(t, 100)
	frank := tokenFor(t, "frank-rej")
	s, created := create(t, tc, "/r", frank, `{"payload": {}}`)
	item := "/r/accounts/sessions/" + s.ID
	coll := "/r/accounts/sessions"

	expired := claimsFor("frank-rej")
	expired["exp"] = testNow().Add(-time.Hour).Unix()
	expired["iat"] = testNow().Add(-2 * time.Hour).Unix()
	noExp := claimsFor("frank-rej")
	delete(noExp, "exp")
	noSub := claimsFor("")
	delete(noSub, "sub")
	future := claimsFor("frank-rej")
	future["nbf"] = testNow().Add(time.Hour).Unix()
	wrongKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("frank-rej")).SignedString([]byte("another-secret-of-32-bytes-or-more!!"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsFor("frank-rej")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// Algorithm confusion: HS256 keyed with the RSA public key's PEM.
	rsaPEM, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("frank-rej")).SignedString(mustRead(t, testKeys.RSAPEM))
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, claimsFor("frank-rej")).SignedString([]byte(testSecret))

	tests := []struct {
		name      string
		rq        request
		status    int
		kind      problemKind
		errorsAt  string // a location the errors list must name
		challenge string // the WWW-Authenticate header, for 401
		allow     string // the Allow header, for 405
	}{
		{name: "no token", rq: request{method: "GET", path: coll}, status: 401, kind: kindMissingToken, challenge: `Bearer realm="ownid_sessions"`},
		{name: "not bearer", rq: request{method: "GET", path: coll, header: map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}}, status: 401, kind: kindInvalidToken, challenge: `Bearer realm="ownid_sessions", error="invalid_token"`},
		{name: "garbage token", rq: request{method: "GET", path: coll, token: "a.b.c"}, status: 401, kind: kindInvalidToken},
		{name: "expired", rq: request{method: "GET", path: coll, token: sign(t, "HS256", expired)}, status: 401, kind: kindInvalidToken},
		{name: "not yet valid", rq: request{method: "GET", path: coll, token: sign(t, "HS256", future)}, status: 401, kind: kindInvalidToken},
		{name: "no exp", rq: request{method: "GET", path: coll, token: sign(t, "HS256", noExp)}, status: 401, kind: kindInvalidToken},
		{name: "no sub", rq: request{method: "GET", path: coll, token: sign(t, "HS256", noSub)}, status: 401, kind: kindInvalidToken},
		{name: "wrong key", rq: request{method: "GET", path: coll, token: wrongKey}, status: 401, kind: kindInvalidToken},
		{name: "alg none", rq: request{method: "GET", path: coll, token: none}, status: 401, kind: kindInvalidToken},
		{name: "alg confusion", rq: request{method: "GET", path: coll, token: rsaPEM}, status: 401, kind: kindInvalidToken},
		{name: "alg not allowed", rq: request{method: "GET", path: coll, token: hs384}, status: 401, kind: kindInvalidToken},

		{name: "options", rq: request{method: "OPTIONS", path: coll, token: frank}, status: 405, kind: kindMethodNotAllowed, allow: "DELETE, GET, POST"},
		{name: "trace", rq: request{method: "TRACE", path: item, token: frank}, status: 405, kind: kindMethodNotAllowed, allow: "DELETE, GET, PUT"},
		{name: "patch", rq: request{method: "PATCH", path: item, token: frank, body: `{}`}, status: 405, kind: kindMethodNotAllowed, allow: "DELETE, GET, PUT"},
		{name: "patch collection", rq: request{method: "PATCH", path: coll, token: frank}, status: 405, kind: kindMethodNotAllowed, allow: "DELETE, GET, POST"},

		{name: "bad session id", rq: request{method: "GET", path: "/r/accounts/sessions/" + strings.Repeat("a", 129), token: frank}, status: 400, kind: kindInvalidSessionID, errorsAt: "sessionId"},
		{name: "escaped session id", rq: request{method: "GET", path: "/r/accounts/sessions/bad%21id", token: frank}, status: 400, kind: kindInvalidRequest, errorsAt: "path"},
		{name: "long session id", rq: request{method: "GET", path: "/r/accounts/sessions/" + strings.Repeat("a", 129), token: frank}, status: 400, kind: kindInvalidSessionID, errorsAt: "sessionId"},
		{name: "malformed json", rq: request{method: "PUT", path: item, token: frank, body: `{"payload": `}, status: 400, kind: kindMalformedJSON},
		{name: "array body", rq: request{method: "PUT", path: item, token: frank, body: `[]`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "string body", rq: request{method: "POST", path: coll, token: frank, body: `"x"`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "null body", rq: request{method: "PUT", path: item, token: frank, body: `null`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "payload not object", rq: request{method: "PUT", path: item, token: frank, body: `{"payload": [1]}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/payload"},
		{name: "create without payload", rq: request{method: "POST", path: coll, token: frank, body: `{"timeout": 5}`}, status: 400, kind: kindInvalidRequest, errorsAt: ""},
		{name: "timeout zero", rq: request{method: "POST", path: coll, token: frank, body: `{"payload": {}, "timeout": 0}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/timeout"},
		{name: "timeout not integer", rq: request{method: "POST", path: coll, token: frank, body: `{"payload": {}, "timeout": 1.5}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/timeout"},
		{name: "timeout huge", rq: request{method: "POST", path: coll, token: frank, body: `{"payload": {}, "timeout": 1e300}`}, status: 400, kind: kindInvalidRequest, errorsAt: "/timeout"},
		{name: "empty body", rq: request{method: "PUT", path: item, token: frank, header: map[string]string{"Content-Type": "application/json"}}, status: 400, kind: kindInvalidRequest, errorsAt: "-"},

		{name: "body too large", rq: request{method: "PUT", path: item, token: frank, body: `{"payload": {"x": "` + strings.Repeat("a", 1100) + `"}}`}, status: 413, kind: kindBodyTooLarge},
		{name: "json in another charset", rq: request{method: "PUT", path: item, token: frank, body: `{}`, header: map[string]string{"Content-Type": "application/json; charset=utf-16"}}, status: 415, kind: kindUnsupportedMediaType},
		{name: "not json", rq: request{method: "PUT", path: item, token: frank, body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}, status: 415, kind: kindUnsupportedMediaType},
		{name: "no content type", rq: request{method: "POST", path: coll, token: frank, body: `{}`, header: map[string]string{"Content-Type": ""}}, status: 415, kind: kindUnsupportedMediaType},
		{name: "missing session", rq: request{method: "PUT", path: "/r/accounts/sessions/nosuchsession", token: frank, body: `{}`}, status: 404, kind: kindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, tc, tt.rq)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.status, r.body)
			}
			p := r.problem(t)
			if p.Type != tt.kind.typeURI() {
				t.Errorf("type %q, want %q", p.Type, tt.kind.typeURI())
			}
			if tt.status == 401 {
				want := tt.challenge
				if want == "" {
					want = `Bearer realm="ownid_sessions", error="invalid_token"`
				}
				if got := r.header.Get("WWW-Authenticate"); got != want {
					t.Errorf("WWW-Authenticate = %q, want %q", got, want)
				}
				if tt.rq.token != "" && bytes.Contains(r.body, []byte(tt.rq.token)) {
					t.Errorf("the token is echoed in the body")
				}
			}
			if tt.allow != "" && r.header.Get("Allow") != tt.allow {
				t.Errorf("Allow = %q, want %q", r.header.Get("Allow"), tt.allow)
			}
			if tt.kind == kindInvalidRequest || tt.kind == kindInvalidSessionID {
				var full struct {
					Errors []fieldError `json:"errors"`
				}
				r.json(t, &full)
				found := false
				for _, e := range full.Errors {
					found = found || e.Location == tt.errorsAt && e.Message != ""
				}
				if tt.errorsAt != "-" && !found {
					t.Errorf("errors %+v name no failure at %q", full.Errors, tt.errorsAt)
				}
			}
		})
	}
	// None of it touched the session.
	r := call(t, tc, request{method: "GET", path: item, token: frank})
	if r.status != 200 || r.header.Get("ETag") != created.header.Get("ETag") {
		t.Fatalf("session after rejections: %d %s etag %s", r.status, r.body, r.header.Get("ETag"))
	}
}
