package ownidsessions

import (
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
)

// TestUnmarshalProviders: one unnamed jwt block is the "jwt" object, as
// before; a named block, or several, make the "providers" list, in order;
// token_from lines keep their order.
func TestUnmarshalProviders(t *testing.T) {
	parse := func(input string) Handler {
		t.Helper()
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			t.Fatal(err)
		}
		return h
	}
	one := parse("ownid_sessions {\n jwt {\n  alg HS256\n }\n}")
	if one.JWT == nil || one.Providers != nil {
		t.Errorf("one unnamed block: jwt %+v, providers %+v", one.JWT, one.Providers)
	}
	named := parse("ownid_sessions {\n jwt okta {\n  alg RS256\n  discover https://okta.example\n }\n}")
	if named.JWT != nil || len(named.Providers) != 1 || named.Providers[0].Name != "okta" || named.Providers[0].Discover != "https://okta.example" {
		t.Errorf("one named block: jwt %+v, providers %+v", named.JWT, named.Providers)
	}
	several := parse(`ownid_sessions {
		token_from cookie tok
		jwt a {
			alg RS256
			jwks_max_bytes 64KiB
			jwks_max_keys 5
		}
		token_from query access_token
		jwt b {
			alg HS256
		}
		token_from header
	}`)
	var names []string
	for _, p := range several.Providers {
		names = append(names, p.Name)
	}
	if several.JWT != nil || !slices.Equal(names, []string{"a", "b"}) || several.Providers[0].JWKSMaxBytes != 64<<10 || several.Providers[0].JWKSMaxKeys != 5 {
		t.Errorf("several blocks: jwt %+v, providers %+v", several.JWT, several.Providers)
	}
	want := []jwtauth.Source{{From: "cookie", Name: "tok"}, {From: "query", Name: "access_token"}, {From: "header"}}
	if !slices.Equal(several.TokenFrom, want) {
		t.Errorf("token_from %+v, want %+v", several.TokenFrom, want)
	}
}
