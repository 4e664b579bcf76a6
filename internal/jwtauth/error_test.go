package jwtauth

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestErrorChallenge: the WWW-Authenticate value names error="invalid_token"
// only when a token was sent (RFC 6750 §3.1), and a 403 has none.
func TestErrorChallenge(t *testing.T) {
	for _, tt := range []struct {
		err  *Error
		want string
	}{
		{missing("no token"), `Bearer realm="ownid_sessions"`},
		{Invalid("expired", "the token has expired"), `Bearer realm="ownid_sessions", error="invalid_token"`},
		{forbidden("requirement", "no"), ""},
	} {
		if got := tt.err.Challenge("ownid_sessions"); got != tt.want {
			t.Errorf("%v: challenge %q, want %q", tt.err, got, tt.want)
		}
	}
	if e := Invalid("no_sub", "the token has no sub claim"); e.Status != 401 || !e.TokenSent || e.Reason != "no_sub" ||
		e.Error() != "token refused (no_sub): the token has no sub claim" {
		t.Errorf("Invalid: %+v, %q", e, e.Error())
	}
	if e := forbidden("requirement", "x"); e.Status != 403 || !e.TokenSent {
		t.Errorf("forbidden: %+v", e)
	}
}

// TestTokenFailure: each of golang-jwt's failures has its bounded reason,
// wrapped or not, and anything else is unverifiable.
func TestTokenFailure(t *testing.T) {
	for err, reason := range map[error]string{
		jwt.ErrTokenMalformed:        "malformed",
		jwt.ErrTokenSignatureInvalid: "signature",
		errNoKey:                     "unknown_key",
		fmt.Errorf("%w: %w", jwt.ErrTokenUnverifiable, errNoKey): "unknown_key",
		errKeyTypeMismatch:               "key_type",
		jwt.ErrTokenUnverifiable:         "unverifiable",
		jwt.ErrTokenRequiredClaimMissing: "missing_claim",
		jwt.ErrTokenExpired:              "expired",
		jwt.ErrTokenNotValidYet:          "not_yet_valid",
		jwt.ErrTokenUsedBeforeIssued:     "issued_in_future",
		jwt.ErrTokenInvalidAudience:      "audience",
		jwt.ErrTokenInvalidClaims:        "claims",
		errors.New("something else"):     "unverifiable",
	} {
		e := tokenFailure(err)
		if e.Reason != reason || e.Status != 401 || !e.TokenSent || e.Detail == "" || strings.Contains(e.Detail, "%") {
			t.Errorf("%v: %+v, want reason %q", err, e, reason)
		}
	}
}
