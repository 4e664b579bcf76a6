package jwtauth

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is what a verified token says: its claims, and the parts the
// handler and the cache use. It is read-only once made: cached identities
// are shared between requests, so nothing may change its fields or its
// claims.
type Identity struct {
	// Claims are the token's claims as golang-jwt decoded them (numbers
	// are float64).
	Claims jwt.MapClaims
	// Issuer is the iss claim; "" when the token has none.
	Issuer string
	// Subject is the sub claim; "" when the token has none.
	Subject string
	// Expires is the exp claim.
	Expires time.Time
	// NotBefore is the nbf claim; zero when the token has none.
	NotBefore time.Time
	// Provider is the name of the provider that verified the token; ""
	// for the only, unnamed one. A cached identity keeps it.
	Provider string
	// Session is the id of the session the token is bound to (the
	// provider's session_claim), "" when it is bound to none.
	Session string
	// SessionCheckTTL is how long a live answer about Session may be
	// remembered (the provider's session_check_ttl).
	SessionCheckTTL time.Duration

	provider *provider // whose leeway and claim rules hold the token
	// resolve is Placeholder as a function value, made once: a method
	// value made for each request is an allocation each.
	resolve func(key string) (any, bool)
}

func newIdentity(claims jwt.MapClaims) *Identity {
	id := &Identity{Claims: claims}
	id.resolve = id.Placeholder
	id.Issuer, _ = claims.GetIssuer()
	id.Subject, _ = claims.GetSubject()
	if exp, _ := claims.GetExpirationTime(); exp != nil {
		id.Expires = exp.Time
	}
	if nbf, _ := claims.GetNotBefore(); nbf != nil {
		id.NotBefore = nbf.Time
	}
	return id
}

// placeholderPrefix is where Caddy's own authentication handler puts the
// authenticated user: {http.auth.user.id} and {http.auth.user.<field>}.
const placeholderPrefix = "http.auth.user."

// Resolver returns Placeholder as a function, for caddy.Replacer.Map.
func (id *Identity) Resolver() func(key string) (any, bool) {
	if id.resolve == nil { // an Identity not made by the verifier
		return id.Placeholder
	}
	return id.resolve
}

// Placeholder resolves {http.auth.user.id} to the subject and
// {http.auth.user.<claim>} to a top-level claim; it is a caddy.ReplacerFunc.
func (id *Identity) Placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, placeholderPrefix)
	if !ok {
		return nil, false
	}
	if name == "id" {
		return id.Subject, true
	}
	v, ok := id.Claims[name]
	if !ok {
		return nil, false
	}
	return claimString(v), true
}

// claimString renders a claim for a placeholder: strings as they are,
// numbers without exponent when integral, anything else as compact JSON.
func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// claimRule is one `require <claim> <value>`: the claim must equal the
// value (string, number or bool) or, for an array claim, hold it.
type claimRule struct {
	claim string
	value string
}

// rulesFrom flattens the configured requirements in a stable order.
func rulesFrom(require map[string][]string) []claimRule {
	var rules []claimRule
	for claim, values := range require {
		for _, v := range values {
			rules = append(rules, claimRule{claim, v})
		}
	}
	slices.SortFunc(rules, func(a, b claimRule) int {
		return strings.Compare(a.claim+"\x00"+a.value, b.claim+"\x00"+b.value)
	})
	return rules
}

func (r claimRule) satisfiedBy(claims jwt.MapClaims) bool {
	v, ok := claims[r.claim]
	if !ok {
		return false
	}
	if list, ok := v.([]any); ok {
		return slices.ContainsFunc(list, func(e any) bool { return scalarEquals(e, r.value) })
	}
	return scalarEquals(v, r.value)
}

func scalarEquals(v any, want string) bool {
	switch x := v.(type) {
	case string:
		return x == want
	case float64:
		f, err := strconv.ParseFloat(want, 64)
		return err == nil && f == x
	case bool:
		return want == strconv.FormatBool(x)
	}
	return false
}

// checkRules answers 403 naming the first claim whose rule fails; it never
// says what the token held.
func checkRules(rules []claimRule, id *Identity) *Error {
	for _, r := range rules {
		if !r.satisfiedBy(id.Claims) {
			return forbidden("requirement", "the token does not meet the requirement on claim "+strconv.Quote(r.claim))
		}
	}
	return nil
}
