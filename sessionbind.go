package ownidsessions

import (
	"context"
	"errors"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// Tokens bound to sessions (jwt session_claim): a token that names a
// session is good only while that session is live in the store, for the
// token's own account and app. This is what revokes a token before its exp,
// at every edge that shares the store.

// maxLiveChecks bounds the cache of live answers (session_check_ttl).
const maxLiveChecks = 100_000

// liveKey names one session of one owner in the cache of live answers.
type liveKey struct {
	owner Owner
	id    string
}

// newLiveCache returns the cache of live answers when a provider remembers
// them (session_check_ttl), nil otherwise. The entries carry their own
// deadline, checked against the handler's clock; the cache's own expiry
// (after the longest TTL) only frees the memory.
func newLiveCache(providers []*jwtauth.Config) *otter.Cache[liveKey, time.Time] {
	var ttl time.Duration
	for _, p := range providers {
		ttl = max(ttl, time.Duration(p.SessionCheckTTL))
	}
	if ttl == 0 {
		return nil
	}
	return otter.Must(&otter.Options[liveKey, time.Time]{
		MaximumSize:      maxLiveChecks,
		ExpiryCalculator: otter.ExpiryWriting[liveKey, time.Time](ttl),
	})
}

// bindsSessions says whether any provider binds tokens to sessions.
func bindsSessions(providers []*jwtauth.Config) bool {
	for _, p := range providers {
		if p != nil && p.SessionClaim != "" {
			return true
		}
	}
	return false
}

// checkBoundSession holds a token that names a session to that session
// being live for the token's account in app: one store read, or a live
// answer remembered for at most session_check_ttl. A session that is not
// live ends the token (401 session-ended); a store that cannot answer is a
// 503, never a pass.
func (h *Handler) checkBoundSession(ctx context.Context, id *jwtauth.Identity, app string) *problem {
	if id.Session == "" {
		return nil
	}
	owner, p := ownerOf(id, app)
	if p != nil {
		return p
	}
	ended := func() *problem {
		p := tokenProblem(jwtauth.Invalid("session_ended", "the session this token is bound to has ended"))
		p.kind = kindSessionEnded
		return h.withMetadata(p)
	}
	if !validSessionID(id.Session) {
		return ended()
	}
	now := h.now().UTC().Truncate(time.Millisecond)
	key := liveKey{owner, id.Session}
	if h.liveChecks != nil && id.SessionCheckTTL > 0 {
		if until, ok := h.liveChecks.GetIfPresent(key); ok && now.Before(until) {
			return nil
		}
	}
	s, err := h.store.Get(ctx, owner, id.Session, now)
	if errors.Is(err, store.ErrNotFound) {
		return ended()
	}
	if err != nil {
		return h.storeProblem(err)
	}
	if h.liveChecks != nil && id.SessionCheckTTL > 0 {
		until := now.Add(id.SessionCheckTTL)
		if end := s.End(); end.Before(until) {
			until = end
		}
		h.liveChecks.Set(key, until)
	}
	return nil
}

// forgetLive drops what the cache remembers of sessions this handler has
// just deleted: one, or all of owner's (but except).
func (h *Handler) forgetLive(owner Owner, id, except string) {
	if h.liveChecks == nil {
		return
	}
	if id != "" {
		h.liveChecks.Invalidate(liveKey{owner, id})
		return
	}
	for k := range h.liveChecks.Keys() {
		if k.owner == owner && k.id != except {
			h.liveChecks.Invalidate(k)
		}
	}
}
