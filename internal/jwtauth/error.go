package jwtauth

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/golang-jwt/jwt/v5"
)

// Error is a refused token. Its Detail says why in words safe to send, never
// what the token held.
type Error struct {
	// Reason is a bounded label for the metrics: missing, malformed,
	// expired, not_yet_valid, issued_in_future, signature, unknown_key,
	// key_type, unverifiable, missing_claim, audience, issuer, claims,
	// critical_header, requirement, session_claim (and no_sub and
	// session_ended, which the caller gives with Invalid).
	Reason string

	// Status is 401 for a token that is missing or not valid, 403 for a
	// valid token that fails a claim requirement.
	Status int

	// Detail is the explanation for the client.
	Detail string

	// TokenSent is false when the request carried no token at all: its
	// challenge then names no error (RFC 6750 §3.1).
	TokenSent bool
}

// Error implements error.
func (e *Error) Error() string {
	return "token refused (" + e.Reason + "): " + e.Detail
}

// Challenge is the WWW-Authenticate value for realm (RFC 6750): with
// error="invalid_token" when a token was sent and refused, without it when
// none was sent, and "" for a 403, whose token is valid.
func (e *Error) Challenge(realm string) string {
	switch {
	case e.Status == http.StatusForbidden:
		return ""
	case !e.TokenSent:
		return "Bearer realm=" + strconv.Quote(realm)
	}
	return "Bearer realm=" + strconv.Quote(realm) + `, error="invalid_token"`
}

// Invalid is a 401 for a token that was sent; reason is the bounded label
// the failure is counted under.
func Invalid(reason, detail string) *Error {
	return &Error{Reason: reason, Status: http.StatusUnauthorized, Detail: detail, TokenSent: true}
}

// missing is the 401 for a request without any token.
func missing(detail string) *Error {
	return &Error{Reason: "missing", Status: http.StatusUnauthorized, Detail: detail}
}

// forbidden is the 403 for a valid token that fails a requirement.
func forbidden(reason, detail string) *Error {
	return &Error{Reason: reason, Status: http.StatusForbidden, Detail: detail, TokenSent: true}
}

var (
	errNoKey           = errors.New("no key for this token")
	errKeyTypeMismatch = errors.New("the key's type does not fit the token's algorithm")
	errCritical        = errors.New("crit header")
)

// tokenFailure names why golang-jwt refused a token: a bounded reason for
// the metrics, and words safe to send.
func tokenFailure(err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Invalid("malformed", "the token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return Invalid("signature", "the token's signature does not verify")
	case errors.Is(err, errNoKey):
		return Invalid("unknown_key", "no configured key verifies this token (unknown kid, or no key for its algorithm)")
	case errors.Is(err, errKeyTypeMismatch):
		return Invalid("key_type", "the key of the token's kid does not fit the token's algorithm")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return Invalid("unverifiable", "the token cannot be verified with the configured keys")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return Invalid("missing_claim", "the token lacks a required claim (exp, or aud when an audience is configured)")
	case errors.Is(err, jwt.ErrTokenExpired):
		return Invalid("expired", "the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return Invalid("not_yet_valid", "the token is not valid yet")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return Invalid("issued_in_future", "the token was issued in the future")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return Invalid("audience", "the token's audience is not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return Invalid("claims", "the token's claims are not valid")
	}
	return Invalid("unverifiable", "the token cannot be verified")
}
