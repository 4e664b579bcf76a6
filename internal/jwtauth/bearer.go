package jwtauth

import (
	"net/http"
	"strings"
)

// bearerToken extracts the token from the Authorization header. The scheme is
// matched case-insensitively (RFC 6750); nothing else carries a token.
func bearerToken(r *http.Request) (string, *Error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", missing("send the token as Authorization: Bearer <token>")
	}
	if len(values) > 1 {
		return "", Invalid("malformed", "more than one Authorization header")
	}
	h := values[0]
	if len(h) > maxAuthorizationHeader {
		return "", Invalid("malformed", "the Authorization header is too large")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", Invalid("malformed", "the Authorization scheme must be Bearer")
	}
	token = strings.TrimSpace(token)
	if strings.Count(token, ".") != 2 {
		return "", Invalid("malformed", "the token is not a JWS compact serialization")
	}
	return token, nil
}
