package jwtauth

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header  []string
		token   string
		sent    bool // the refusal is about a token that was sent
		problem bool
	}{
		{header: []string{"Bearer a.b.c"}, token: "a.b.c"},
		{header: []string{"bearer a.b.c"}, token: "a.b.c"},
		{header: []string{"BEARER   a.b.c  "}, token: "a.b.c"},
		{header: nil, sent: false, problem: true},
		{header: []string{"Bearer a.b.c", "Bearer a.b.c"}, sent: true, problem: true},
		{header: []string{"Basic a.b.c"}, sent: true, problem: true},
		{header: []string{"Bearer"}, sent: true, problem: true},
		{header: []string{"Bearer a.b"}, sent: true, problem: true},
		{header: []string{"Bearer " + strings.Repeat("x", maxAuthorizationHeader)}, sent: true, problem: true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		for _, h := range tt.header {
			r.Header.Add("Authorization", h)
		}
		tok, p := bearerToken(r)
		if tt.problem {
			if p == nil || p.Status != 401 || p.TokenSent != tt.sent {
				t.Errorf("%q: got %q, %v; want a 401 with TokenSent %v", tt.header, tok, p, tt.sent)
				continue
			}
			// Missing is its own reason; every other refusal here is a
			// malformed header.
			if want := map[bool]string{false: "missing", true: "malformed"}[tt.sent]; p.Reason != want {
				t.Errorf("%q: reason %q, want %q", tt.header, p.Reason, want)
			}
			continue
		}
		if p != nil || tok != tt.token {
			t.Errorf("%q: got %q, %v", tt.header, tok, p)
		}
	}
}
