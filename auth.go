package ownidsessions

import (
	"net/http"
	"strings"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
)

// realm names the module in its bearer challenges (RFC 6750).
const realm = "ownid_sessions"

// tokenProblem is the answer to a refused token: missing-token when none
// was sent, claim-requirement-failed for a 403, invalid-token otherwise,
// with the challenge the refusal calls for and its reason for the metrics.
func tokenProblem(e *jwtauth.Error) *problem {
	kind := kindInvalidToken
	switch {
	case e.Status == http.StatusForbidden:
		kind = kindForbidden
	case !e.TokenSent:
		kind = kindMissingToken
	}
	p := newProblem(kind, e.Detail)
	if c := e.Challenge(realm); c != "" {
		p.withHeader("WWW-Authenticate", c)
	}
	p.reason = e.Reason
	return p
}

// ownerOf returns who the token speaks for in app: its issuer and subject
// together. A token without sub speaks for no account.
func ownerOf(id *jwtauth.Identity, app string) (Owner, *problem) {
	if id.Subject == "" {
		return Owner{}, tokenProblem(jwtauth.Invalid("no_sub", "the token has no sub claim"))
	}
	if strings.ContainsRune(id.Subject, 0) || strings.ContainsRune(id.Issuer, 0) {
		return Owner{}, tokenProblem(jwtauth.Invalid("claims", "the token's sub or iss claim holds a NUL character"))
	}
	return Owner{App: app, Issuer: id.Issuer, Subject: id.Subject}, nil
}
