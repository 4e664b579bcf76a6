package ownidsessions

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
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
//		mode            serve | forward
//		spec            <file>
//		max_body        <size>
//		strict
//		undescribed     pass | refuse
//		jwt [<name>] {
//			alg       <ALG...>
//			secret    <value>
//			key       <pem-file>
//			jwks      <url...>
//			discover  <issuer-url>
//			issuer    <iss...>
//			audience  <aud...>
//			leeway    <duration>
//			require   <claim> <value>
//			jwks_refresh          <duration>
//			jwks_refetch_interval <duration>
//			jwks_wait             <duration>
//			jwks_max_bytes        <size>
//			jwks_max_keys         <n>
//			cache_size            <entries>
//			cache_ttl             <duration>
//			session_claim         <claim>
//			session_check_ttl     <duration>
//		}
//		scheme          <scheme> <provider...>
//		ignore_scheme   <scheme...>
//		preflight       pass | refuse
//		resource_metadata <resource-uri>
//		token_from      header [<name>] | cookie <name> | query <name>
//		app_claim       <claim>
//		apps            <app...>
//		store           memory [<name>] {
//			sweep_interval    <duration>
//			max_live_sessions <n>
//			max_bytes         <size>
//		}
//		store           redis <url> { ... }
//		session_timeout <duration>
//		max_lifetime    <duration>
//		idempotency_ttl <duration>
//		cursor_secret   <secret>
//		max_sessions    <n>
//		validate_responses off | report | enforce
//		response_buffer <size>
//	}
//
// The jwt block is repeatable: each block is one token provider. A single
// unnamed block is the handler's "jwt" object; named or several blocks
// (several need names) are its "providers" list. token_from is repeatable,
// the places tried in order.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	segment := d.NextSegment()
	if err := refuseEmptyArgs(nextOf(segment), ""); err != nil {
		return err
	}
	d = nextOf(segment)
	if d.NextArg() {
		return d.ArgErr()
	}
	// Values are checked where the JSON config is checked too, when the
	// handler is provisioned; here only their syntax.
	for d.NextBlock(0) {
		sub := d.Val()
		var err error
		switch sub {
		case "mode":
			h.Mode, err = oneArg(d)
		case "spec":
			h.Spec, err = oneArg(d)
		case "validate_responses":
			h.ValidateResponses, err = oneArg(d)
		case "undescribed":
			h.Undescribed, err = oneArg(d)
		case "app_claim":
			h.AppClaim, err = oneArg(d)
		case "cursor_secret":
			h.CursorSecret, err = oneArg(d)
		case "response_buffer":
			h.ResponseBuffer, err = sizeArg(d, sub, 1<<30)
		case "max_body":
			h.MaxBody, err = sizeArg(d, sub, 1<<40)
		case "session_timeout":
			h.SessionTimeout, err = durationArg(d, sub)
		case "idempotency_ttl":
			h.IdempotencyTTL, err = durationArg(d, sub)
		case "max_lifetime":
			h.MaxLifetime, err = durationArg(d, sub)
		case "max_sessions":
			h.MaxSessions, err = countArg(d, sub)
		case "strict":
			h.Strict = true
		case "preflight":
			h.Preflight, err = oneArg(d)
		case "resource_metadata":
			h.ResourceMetadata, err = oneArg(d)
		case "scheme":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("scheme: takes a scheme name and at least one provider name")
			}
			if h.Schemes == nil {
				h.Schemes = map[string][]string{}
			}
			h.Schemes[args[0]] = append(h.Schemes[args[0]], args[1:]...)
		case "ignore_scheme":
			h.IgnoreSchemes = append(h.IgnoreSchemes, d.RemainingArgs()...)
			if len(h.IgnoreSchemes) == 0 {
				err = d.ArgErr()
			}
		case "apps":
			h.Apps = append(h.Apps, d.RemainingArgs()...)
			if len(h.Apps) == 0 {
				err = d.Errf("apps: name at least one app")
			}
		case "jwt":
			provider := new(jwtauth.Config)
			if err = unmarshalJWT(provider, d); err != nil {
				break
			}
			if aerr := addProvider(h, provider); aerr != nil {
				return d.Errf("%v", aerr)
			}
		case "token_from":
			var src jwtauth.Source
			if src, err = unmarshalSource(d); err == nil {
				h.TokenFrom = append(h.TokenFrom, src)
			}
		case "store":
			var name string
			if name, err = oneArg(d); err != nil {
				break
			}
			unm, uerr := caddyfile.UnmarshalModule(d, storeNamespace+"."+name)
			if uerr != nil {
				return d.Errf("store: %v", uerr)
			}
			h.StoreRaw = caddyconfig.JSONModuleObject(unm, "type", name, nil)
		default:
			return d.Errf("unrecognized subdirective %q", sub)
		}
		if err != nil {
			return err
		}
		if d.NextArg() {
			return d.Errf("%s: unexpected argument %q", sub, d.Val())
		}
	}
	return nil
}

// nextOf is a dispenser of segment, on its first token (the directive).
func nextOf(segment caddyfile.Segment) *caddyfile.Dispenser {
	d := caddyfile.NewDispenser(segment)
	d.Next()
	return d
}

// oneArg reads the one argument of a subdirective.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	return d.Val(), nil
}

// refuseEmptyArgs refuses an empty argument ("") anywhere in the block,
// nested blocks (jwt, store) included, naming its subdirective: an empty
// value would read as the subdirective left out (session_claim "" would
// turn binding off) or as a value no token can have.
func refuseEmptyArgs(d *caddyfile.Dispenser, prefix string) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := prefix + d.Val()
		for d.NextArg() {
			if d.Val() == "{" {
				d.Prev() // the block opens: NextBlock enters it
				break
			}
			if d.Val() == "" {
				return d.Errf("%s: takes a value, not an empty string", sub)
			}
		}
		if err := refuseEmptyArgs(d, sub+" "); err != nil {
			return err
		}
	}
	return nil
}

// sizeArg reads one size (64KiB, 1MB, …) from 1 byte to limit.
func sizeArg(d *caddyfile.Dispenser, sub string, limit uint64) (int64, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(v)
	if err != nil || size == 0 || size > limit {
		return 0, d.Errf("%s: invalid size %q", sub, v)
	}
	return int64(size), nil
}

// durationArg reads one positive duration.
func durationArg(d *caddyfile.Dispenser, sub string) (caddy.Duration, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: invalid duration %q", sub, v)
	}
	return caddy.Duration(dur), nil
}

// countArg reads one positive whole number.
func countArg(d *caddyfile.Dispenser, sub string) (int, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: want a positive integer, got %q", sub, v)
	}
	return n, nil
}

// unmarshalJWT reads a jwt block.
func unmarshalJWT(j *jwtauth.Config, d *caddyfile.Dispenser) error {
	if d.NextArg() {
		j.Name = d.Val()
		if d.NextArg() {
			return d.Errf("jwt: takes at most a provider name, got %q too", d.Val())
		}
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
			dur, err := oneDuration(d, sub, args, true)
			if err != nil {
				return err
			}
			j.Leeway = &dur
		case "jwks":
			j.JWKS = append(j.JWKS, args...)
		case "discover":
			if len(args) != 1 {
				return d.Errf("jwt discover: takes one issuer URL")
			}
			j.Discover = args[0]
		case "jwks_max_bytes":
			size, err := humanize.ParseBytes(args[0])
			if len(args) != 1 || err != nil || size == 0 || size > 1<<30 {
				return d.Errf("jwt jwks_max_bytes: invalid size %q", strings.Join(args, " "))
			}
			j.JWKSMaxBytes = int64(size)
		case "jwks_max_keys":
			n, err := strconv.Atoi(args[0])
			if len(args) != 1 || err != nil || n <= 0 {
				return d.Errf("jwt jwks_max_keys: want a positive number of keys, got %q", strings.Join(args, " "))
			}
			j.JWKSMaxKeys = n
		case "session_claim":
			if len(args) != 1 {
				return d.Errf("jwt session_claim: takes one claim name")
			}
			j.SessionClaim = args[0]
		case "jwks_refresh", "jwks_refetch_interval", "jwks_wait", "cache_ttl", "session_check_ttl":
			dur, err := oneDuration(d, sub, args, sub == "session_check_ttl")
			if err != nil {
				return err
			}
			switch sub {
			case "jwks_refresh":
				j.JWKSRefresh = dur
			case "jwks_refetch_interval":
				j.JWKSRefetchInterval = dur
			case "jwks_wait":
				j.JWKSWait = dur
			case "cache_ttl":
				j.CacheTTL = dur
			case "session_check_ttl":
				j.SessionCheckTTL = dur
			}
		case "cache_size":
			n, err := strconv.Atoi(args[0])
			if len(args) != 1 || err != nil || n < 0 {
				return d.Errf("jwt cache_size: want a whole number of entries (0 turns the cache off), got %q", strings.Join(args, " "))
			}
			j.CacheSize = &n
		case "require":
			if len(args) != 2 {
				return d.Errf("jwt require: takes a claim name and a value")
			}
			if j.Require == nil {
				j.Require = map[string][]string{}
			}
			j.Require[args[0]] = append(j.Require[args[0]], args[1])
		default:
			return d.Errf("jwt: unrecognized subdirective %q", sub)
		}
	}
	return nil
}

// oneDuration reads the single duration argument of a jwt subdirective.
func oneDuration(d *caddyfile.Dispenser, sub string, args []string, zeroOK bool) (caddy.Duration, error) {
	if len(args) != 1 {
		return 0, d.Errf("jwt %s: takes one duration", sub)
	}
	dur, err := caddy.ParseDuration(args[0])
	if err != nil || dur < 0 || dur == 0 && !zeroOK {
		return 0, d.Errf("jwt %s: invalid duration %q", sub, args[0])
	}
	return caddy.Duration(dur), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
