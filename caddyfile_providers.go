package ownidsessions

import (
	"fmt"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
)

// addProvider adds the provider of one jwt block. The first block, if it
// has no name, is the single-provider "jwt" object; a named block, or a
// second one, makes the providers list (and each then needs a name, so
// that logs, metrics and scheme bindings can tell them apart).
func addProvider(h *Handler, p *jwtauth.Config) error {
	if h.JWT == nil && len(h.Providers) == 0 && p.Name == "" {
		h.JWT = p
		return nil
	}
	if h.JWT != nil {
		h.Providers, h.JWT = []*jwtauth.Config{h.JWT}, nil
	}
	h.Providers = append(h.Providers, p)
	names := map[string]bool{}
	for _, q := range h.Providers {
		if q.Name == "" {
			return fmt.Errorf("jwt: with several jwt blocks, each needs a name (jwt <name> { ... })")
		}
		if names[q.Name] {
			return fmt.Errorf("jwt %s: two jwt blocks have this name", q.Name)
		}
		names[q.Name] = true
	}
	return nil
}

// unmarshalSource reads one token_from: header [<name>], cookie <name> or
// query <name>.
func unmarshalSource(d *caddyfile.Dispenser) (jwtauth.Source, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return jwtauth.Source{}, d.Errf("token_from: want header [<name>], cookie <name> or query <name>")
	}
	src := jwtauth.Source{From: args[0]}
	switch {
	case len(args) > 2:
		return src, d.Errf("token_from %s: takes one name", src.From)
	case len(args) == 2:
		src.Name = args[1]
	}
	switch src.From {
	case jwtauth.FromHeader:
	case jwtauth.FromCookie, jwtauth.FromQuery:
		if src.Name == "" {
			return src, d.Errf("token_from %s: needs the %s's name", src.From, map[string]string{jwtauth.FromCookie: "cookie", jwtauth.FromQuery: "parameter"}[src.From])
		}
	default:
		return src, d.Errf("token_from: unknown source %q (want header, cookie or query)", src.From)
	}
	return src, nil
}
