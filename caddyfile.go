package ownidsessions

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("ownid_sessions", parseCaddyfile)
	// Right before respond: after basic_auth, forward_auth and encode, and
	// ahead of respond, reverse_proxy and file_server, so that no `order`
	// option is needed and a fallback respond does not shadow the module.
	httpcaddyfile.RegisterDirectiveOrder("ownid_sessions", httpcaddyfile.Before, "respond")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	ownid_sessions [<matcher>] {
//		mode            serve
//		max_body        <size>
//		jwt {
//			alg       <ALG...>
//			secret    <value>
//			key       <pem-file>
//			issuer    <iss...>
//			audience  <aud...>
//			leeway    <duration>
//		}
//		store           memory [<name>]
//		session_timeout <duration>
//		max_sessions    <n>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		sub := d.Val()
		switch sub {
		case "mode":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Mode = d.Val()
			if h.Mode != ModeServe {
				return d.Errf("mode: unknown mode %q (want serve)", h.Mode)
			}
		case "max_body":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("max_body: invalid size %q", d.Val())
			}
			h.MaxBody = int64(size)
		case "jwt":
			if h.JWT == nil {
				h.JWT = new(JWTConfig)
			}
			if err := h.JWT.unmarshalCaddyfile(d); err != nil {
				return err
			}
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			modID := "http.handlers.ownid_sessions.stores." + name
			unm, err := caddyfile.UnmarshalModule(d, modID)
			if err != nil {
				return d.Errf("store: %v", err)
			}
			h.StoreRaw = caddyconfig.JSONModuleObject(unm, "type", name, nil)
		case "session_timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("session_timeout: invalid duration %q", d.Val())
			}
			h.SessionTimeout = caddy.Duration(dur)
		case "max_sessions":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("max_sessions: want a positive integer, got %q", d.Val())
			}
			h.MaxSessions = n
		default:
			return d.Errf("unrecognized subdirective %q", sub)
		}
		if d.NextArg() {
			return d.Errf("%s: unexpected argument %q", sub, d.Val())
		}
	}
	return nil
}

// unmarshalCaddyfile reads the jwt block.
func (j *JWTConfig) unmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.Errf("jwt %s: needs a value", sub)
		}
		switch sub {
		case "alg":
			j.Algorithms = append(j.Algorithms, args...)
		case "secret":
			if len(args) != 1 {
				return d.Errf("jwt secret: takes one value")
			}
			j.Secret = args[0]
		case "key":
			j.Keys = append(j.Keys, args...)
		case "issuer":
			j.Issuers = append(j.Issuers, args...)
		case "audience":
			j.Audiences = append(j.Audiences, args...)
		case "leeway":
			if len(args) != 1 {
				return d.Errf("jwt leeway: takes one duration")
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur < 0 {
				return d.Errf("jwt leeway: invalid duration %q", args[0])
			}
			leeway := caddy.Duration(dur)
			j.Leeway = &leeway
		default:
			return d.Errf("jwt: unrecognized subdirective %q", sub)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
