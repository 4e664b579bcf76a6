package ownidsessions

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Store keeps sessions. Every method is atomic with respect to the others,
// and a session that has expired behaves exactly like one that never existed.
// Sessions are returned by value; their Payload is never modified in place.
type Store interface {
	// Create stores s (whose ID, Created and LastActive are set) for owner,
	// unless owner already holds maxPerOwner live sessions
	// (ErrTooManySessions) or the store is full (ErrStoreFull).
	Create(ctx context.Context, owner Owner, s Session, maxPerOwner int, now time.Time) (Session, error)

	// List returns owner's live sessions, oldest first.
	List(ctx context.Context, owner Owner, now time.Time) ([]Session, error)

	// Get returns one of owner's live sessions (ErrNotFound otherwise).
	Get(ctx context.Context, owner Owner, id string, now time.Time) (Session, error)

	// Update replaces the payload (kept when payload is nil), refreshes
	// LastActive and gives the session a new ETag. If ifMatch is not nil,
	// the write happens only if it matches the current ETag
	// (ErrPreconditionFailed otherwise).
	Update(ctx context.Context, owner Owner, id string, payload json.RawMessage, ifMatch *ifMatch, now time.Time) (Session, error)

	// Delete removes one of owner's sessions, with ifMatch as for Update.
	Delete(ctx context.Context, owner Owner, id string, ifMatch *ifMatch, now time.Time) error
}

// Errors a Store returns; the handler maps each to its problem.
var (
	ErrNotFound           = errors.New("session not found")
	ErrPreconditionFailed = errors.New("session etag does not match")
	ErrTooManySessions    = errors.New("account holds too many sessions")
	ErrStoreFull          = errors.New("the store holds its maximum of live sessions")
)

// StoreFullError is ErrStoreFull with a hint of when to try again.
type StoreFullError struct {
	RetryAfter time.Duration
}

func (e StoreFullError) Error() string        { return ErrStoreFull.Error() }
func (e StoreFullError) Is(target error) bool { return target == ErrStoreFull }

// Owner is who a session belongs to: the app (the path prefix before
// /accounts/sessions) and the account, which is the verified token's issuer
// and subject together, so that two issuers' "alice" are two accounts.
type Owner struct {
	App string
	// Issuer is the token's iss; "" for a token without one (an iss of ""
	// names no issuer either), which is its own value: no issuer's
	// accounts meet it.
	Issuer  string
	Subject string
}

// Session is one stored session.
type Session struct {
	ID         string
	Created    time.Time
	LastActive time.Time
	// Timeout is the idle timeout.
	Timeout time.Duration
	// Payload is a JSON object, compacted.
	Payload json.RawMessage
	// Revision counts the writes; the ETag is derived from it.
	Revision uint64
}

// expired says whether the session's idle timeout has run out at now.
func (s *Session) expired(now time.Time) bool {
	return !now.Before(s.LastActive.Add(s.Timeout))
}

// ETag is the session's strong entity tag. Revisions only grow, and ids are
// never reused, so a tag names exactly one state of one session.
func (s *Session) ETag() string {
	return `"` + strconv.FormatUint(s.Revision, 10) + `"`
}

// sortSessions puts sessions in list order: oldest first, then by id.
func sortSessions(sessions []Session) {
	slices.SortFunc(sessions, func(a, b Session) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
}

// newSessionID returns 128 bits from crypto/rand, URL-safe: 22 characters.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ifMatch is a parsed If-Match header (RFC 9110 §13.1.1).
type ifMatch struct {
	any  bool     // "*": any current representation
	tags []string // strong entity tags, quotes included
}

// parseIfMatch reads the If-Match header; nil when the request has none.
// Weak tags are kept out: If-Match uses the strong comparison, so they never
// match.
func parseIfMatch(values []string) *ifMatch {
	if len(values) == 0 {
		return nil
	}
	m := &ifMatch{}
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			switch {
			case tag == "*":
				m.any = true
			case len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"':
				m.tags = append(m.tags, tag)
			}
		}
	}
	return m
}

// matches says whether etag satisfies the condition.
func (m *ifMatch) matches(etag string) bool {
	return m == nil || m.any || slices.Contains(m.tags, etag)
}
