package ownidsessions

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	highbase "github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// Authorization from the document: each operation's security (or the
// document's), a list of requirement objects any one of which must hold
// (OR), each naming schemes that must all hold (AND), with the scopes each
// scheme needs. Schemes a JWT can satisfy (http bearer, oauth2,
// openIdConnect) are held to the verified token and its scope or scp claim.

// requirement is one security requirement object.
type requirement []schemeNeed

// schemeNeed is one scheme of a requirement and the scopes it needs.
type schemeNeed struct {
	scheme string
	scopes []string
}

// operationSecurity is an operation's resolved security: its requirements,
// and whether it is public (security: [], or an empty requirement {}).
type operationSecurity struct {
	requirements []requirement
	public       bool
}

// schemeKinds are the types of security scheme: those a verified JWT
// satisfies, and the others, which the module leaves to other handlers
// only when told to (ignore_scheme).
func jwtScheme(s *v3.SecurityScheme) bool {
	switch strings.ToLower(s.Type) {
	case "oauth2", "openidconnect":
		return true
	case "http":
		return strings.EqualFold(s.Scheme, "bearer")
	}
	return false
}

// compileSecurity resolves an operation's security: its own, or the
// document's when it has none.
func compileSecurity(own, document []*highbase.SecurityRequirement) operationSecurity {
	reqs := own
	if reqs == nil {
		reqs = document
	}
	var sec operationSecurity
	if reqs != nil && len(reqs) == 0 {
		sec.public = true
	}
	for _, r := range reqs {
		if r == nil {
			continue
		}
		if r.ContainsEmptyRequirement || r.Requirements == nil || r.Requirements.Len() == 0 {
			sec.public = true
			continue
		}
		var req requirement
		for pair := r.Requirements.First(); pair != nil; pair = pair.Next() {
			req = append(req, schemeNeed{scheme: pair.Key(), scopes: pair.Value()})
		}
		sec.requirements = append(sec.requirements, req)
	}
	return sec
}

// checkSchemes fails for a scheme an operation uses that the document does
// not define, or that no JWT can satisfy and is not ignored.
func (c *contract) checkSchemes(ignored []string) error {
	for _, info := range c.byPattern {
		for _, op := range info.ops {
			for _, req := range op.security.requirements {
				for _, need := range req.scheme() {
					if slices.Contains(ignored, need) {
						continue
					}
					s, ok := c.schemes[need]
					if !ok {
						return fmt.Errorf("spec: security scheme %q is used but not defined in components.securitySchemes", need)
					}
					if !jwtScheme(s) {
						return fmt.Errorf("spec: security scheme %q is of type %s, which a bearer JWT cannot satisfy; leave it to another handler with ignore_scheme %s", need, schemeType(s), need)
					}
				}
			}
		}
	}
	return nil
}

func (r requirement) scheme() []string {
	names := make([]string, len(r))
	for i, n := range r {
		names[i] = n.scheme
	}
	return names
}

func schemeType(s *v3.SecurityScheme) string {
	if strings.EqualFold(s.Type, "http") && s.Scheme != "" {
		return "http " + s.Scheme
	}
	return s.Type
}

// authorizeOperation holds a verified token to the operation's security.
// A scheme the operator ignores counts as held (another handler checks
// it); a scheme bound to providers holds only for a token one of them
// verified. It answers 403 insufficient_scope naming the scopes of the
// first requirement the token fails only for scopes, and 401 when no
// requirement accepts the token's provider.
func (h *Handler) authorizeOperation(sec operationSecurity, id *jwtauth.Identity) *problem {
	if sec.public || len(sec.requirements) == 0 {
		return nil
	}
	var needed []string
	for _, req := range sec.requirements {
		var all []string
		held, providerOK := true, true
		for _, need := range req {
			if slices.Contains(h.IgnoreSchemes, need.scheme) {
				continue
			}
			if bound, ok := h.Schemes[need.scheme]; ok && !slices.Contains(bound, id.Provider) {
				providerOK = false
				break
			}
			all = append(all, need.scopes...)
			for _, s := range need.scopes {
				if !grantsScope(id, s) {
					held = false
				}
			}
		}
		if held && providerOK {
			return nil
		}
		if providerOK && needed == nil {
			needed = all
		}
	}
	if needed == nil {
		return tokenProblem(jwtauth.Invalid("provider", "the token's provider does not satisfy this operation's security"))
	}
	scopes := strings.Join(needed, " ")
	p := newProblem(kindInsufficientScope, "the operation needs the scopes: "+scopes)
	p.withHeader("WWW-Authenticate", `Bearer realm="`+realm+`", error="insufficient_scope", scope="`+scopes+`"`)
	p.reason = "insufficient_scope"
	return p
}

// checkBindings checks each scheme binding against the document and the
// providers' names.
func (h *Handler) checkBindings(providers []*jwtauth.Config) error {
	for scheme, names := range h.Schemes {
		s, ok := h.contract.schemes[scheme]
		if !ok {
			return fmt.Errorf("scheme: %q is not a security scheme of the document", scheme)
		}
		if !jwtScheme(s) {
			return fmt.Errorf("scheme: %q is of type %s, which a bearer JWT cannot satisfy", scheme, schemeType(s))
		}
		for _, name := range names {
			if !slices.ContainsFunc(providers, func(p *jwtauth.Config) bool { return p.Name == name }) {
				return fmt.Errorf("scheme %s: no token provider is named %q", scheme, name)
			}
		}
	}
	return nil
}

// grantsScope says whether the token grants scope: its scope claim
// (space-separated) or its scp claim (a string or an array of strings).
func grantsScope(id *jwtauth.Identity, scope string) bool {
	if s, ok := id.Claims["scope"].(string); ok && slices.Contains(strings.Fields(s), scope) {
		return true
	}
	switch scp := id.Claims["scp"].(type) {
	case string:
		return slices.Contains(strings.Fields(scp), scope)
	case []any:
		for _, v := range scp {
			if s, ok := v.(string); ok && s == scope {
				return true
			}
		}
	}
	return false
}

// preflight says whether r is a CORS preflight request to hand on.
func (h *Handler) preflight(r *http.Request) bool {
	return h.Preflight == PreflightPass && r.Method == http.MethodOptions &&
		r.Header.Get("Origin") != "" && httpguts.ValidHeaderFieldName(r.Header.Get("Access-Control-Request-Method"))
}

// publicOperation says whether a request may go on without a token: the
// operation is public, and no account is needed to serve it (forward mode;
// serve mode names the account from the token).
func (h *Handler) publicOperation(rt route) bool {
	return h.Mode == ModeForward && rt.op != nil && rt.op.security.public
}
