// Package store is what ownid_sessions needs from a session store: the
// Store interface, the Session it keeps, the Owner it keeps it for, the
// If-Match precondition of writes and the errors a store answers with.
//
// A store is a Caddy module in the http.ownid_sessions.stores namespace
// whose value implements Store; the handler loads it from its "store"
// field. Two come with the module (store/memory and store/redis), and
// store/storetest is the suite any store must pass. Optional interfaces
// (Counter, Describer) tell the admin endpoint and the metrics more about a
// store that implements them.
//
// The package imports nothing but the standard library.
package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"
)

// Store keeps sessions. Every method is atomic with respect to the others,
// and a session that has expired behaves exactly like one that never existed.
// Sessions are returned by value; their Payload is never modified in place.
// The time is always given (now), never read from a clock of the store's.
type Store interface {
	// Create stores s (whose ID, Created and LastActive are set) for owner,
	// unless owner already holds maxPerOwner live sessions
	// (ErrTooManySessions) or the store is full (ErrStoreFull). The
	// session it returns has Revision 1.
	//
	// With idem (a client's Idempotency-Key), the first create under that
	// key for owner is remembered for idem.TTL, in the same step: a later
	// Create with the same key and fingerprint returns that first session
	// as it was created (same ID and ETag) and stores nothing; one with
	// another fingerprint is ErrIdempotencyMismatch. A create that fails is
	// not remembered.
	Create(ctx context.Context, owner Owner, s Session, maxPerOwner int, idem *Idempotency, now time.Time) (Session, error)

	// List returns owner's live sessions, the most recently active first
	// (see Sort).
	List(ctx context.Context, owner Owner, now time.Time) ([]Session, error)

	// Get returns one of owner's live sessions (ErrNotFound otherwise).
	Get(ctx context.Context, owner Owner, id string, now time.Time) (Session, error)

	// Update replaces the payload (kept when payload is nil), refreshes
	// LastActive and gives the session a new ETag. If ifMatch is not nil,
	// the write happens only if it matches the current ETag
	// (ErrPreconditionFailed otherwise).
	Update(ctx context.Context, owner Owner, id string, payload json.RawMessage, ifMatch *IfMatch, now time.Time) (Session, error)

	// Delete removes one of owner's sessions, with ifMatch as for Update.
	Delete(ctx context.Context, owner Owner, id string, ifMatch *IfMatch, now time.Time) error

	// DeleteAll removes every live session of owner but except (none when
	// except is ""), in one step with respect to the other methods: a
	// concurrent Create lands either before (and is removed) or after
	// (and stays). It returns how many live sessions it removed.
	DeleteAll(ctx context.Context, owner Owner, except string, now time.Time) (int, error)
}

// Errors a Store returns; the handler maps each to its problem. Any other
// error means the store could not be reached and nothing was written (503
// store-unavailable): a store must return ErrOutcomeUnknown, not that,
// whenever a write may have been applied.
var (
	// ErrNotFound: no live session of that id for that owner.
	ErrNotFound = errors.New("session not found")
	// ErrPreconditionFailed: If-Match does not match the session's ETag;
	// nothing was changed.
	ErrPreconditionFailed = errors.New("session etag does not match")
	// ErrTooManySessions: the owner already holds maxPerOwner live
	// sessions; nothing was created.
	ErrTooManySessions = errors.New("account holds too many sessions")
	// ErrStoreFull: the store is at a global cap (sessions or bytes);
	// nothing was written. Return a StoreFullError to say when to retry.
	ErrStoreFull = errors.New("the store holds its maximum of live sessions")
	// ErrOutcomeUnknown: a write was sent but its outcome is not known (no
	// answer in time, the connection broke after sending, or replicas did
	// not confirm it): it may have been applied. Wrap it with the cause.
	ErrOutcomeUnknown = errors.New("the store did not confirm the write; it may have been applied")
	// ErrIdempotencyMismatch: the Idempotency-Key was used by the owner
	// for a create of another request; nothing was created.
	ErrIdempotencyMismatch = errors.New("the idempotency key was used for another request")
)

// Idempotency names a create that its client may send again (the
// Idempotency-Key header, IETF httpapi draft).
type Idempotency struct {
	// Key is the client's key, unique per owner.
	Key string
	// Fingerprint identifies the request (a hash of its body): the same
	// key with another fingerprint is another request.
	Fingerprint string
	// TTL is how long the key is remembered after the create.
	TTL time.Duration
}

// StoreFullError is ErrStoreFull with a hint of when to try again
// (errors.Is(err, ErrStoreFull) holds for it).
type StoreFullError struct {
	// RetryAfter is when room may come back; 0 leaves it to the handler.
	RetryAfter time.Duration
}

// Error says that the store is full.
func (e StoreFullError) Error() string { return ErrStoreFull.Error() }

// Is makes a StoreFullError match ErrStoreFull.
func (e StoreFullError) Is(target error) bool { return target == ErrStoreFull }

// Owner is who a session belongs to: the app (the path prefix before
// /accounts/sessions) and the account, which is the verified token's issuer
// and subject together, so that two issuers' "alice" are two accounts.
// Sessions of one Owner never meet those of another, whatever the strings
// hold.
type Owner struct {
	// App is the path prefix before /accounts/sessions; "" when there is
	// none.
	App string
	// Issuer is the token's iss; "" for a token without one (an iss of ""
	// names no issuer either), which is its own value: no issuer's
	// accounts meet it.
	Issuer string
	// Subject is the token's sub.
	Subject string
}

// AppendBinary appends the owner's parts, each length-prefixed (a
// big-endian uint64, then the bytes), so that no app, issuer and subject
// spell another's: what keys and signatures that name an owner hash.
func (o Owner) AppendBinary(b []byte) ([]byte, error) {
	for _, part := range []string{o.App, o.Issuer, o.Subject} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b, nil
}

// Session is one stored session.
type Session struct {
	// ID is the session's id, from NewID; never reused.
	ID string
	// Created is when the session was created.
	Created time.Time
	// LastActive is when it was created or last updated.
	LastActive time.Time
	// Timeout is the idle timeout.
	Timeout time.Duration
	// Expires is the absolute end of the session, which no update moves;
	// zero when it has none (it then ends only by idling).
	Expires time.Time
	// Payload is a JSON object, compacted.
	Payload json.RawMessage
	// Revision counts the writes (1 after Create).
	Revision uint64
	// Tag names this write of the session for all time (NewTag, set by
	// the store on Create and on every Update), so that no rollback of
	// the store can make an old ETag match other content. "" only for a
	// session an earlier version stored and nothing has written since;
	// its ETag is then derived from Revision.
	Tag string
}

// Expired says whether the session has ended at now: from its End on,
// exactly.
func (s *Session) Expired(now time.Time) bool {
	return !now.Before(s.End())
}

// End is when the session ends unless it is updated before: the earlier of
// its idle expiry (LastActive+Timeout) and its absolute end (Expires), when
// it has one.
func (s *Session) End() time.Time {
	idle := s.LastActive.Add(s.Timeout)
	if !s.Expires.IsZero() && s.Expires.Before(idle) {
		return s.Expires
	}
	return idle
}

// ETag is the session's strong entity tag: its Tag, which names one write
// of one session for all time (128 random bits).
func (s *Session) ETag() string {
	if s.Tag != "" {
		return `"` + s.Tag + `"`
	}
	return `"` + strconv.FormatUint(s.Revision, 10) + `"`
}

// Sort puts sessions in the order List returns them: the most recently
// active first (by LastActive, newest first), then by ID.
func Sort(sessions []Session) {
	slices.SortFunc(sessions, Compare)
}

// Compare orders two sessions as Sort does.
func Compare(a, b Session) int {
	return cmp.Or(b.LastActive.Compare(a.LastActive), cmp.Compare(a.ID, b.ID))
}

// NewTag returns a new write tag: 128 bits from crypto/rand, URL-safe, 22
// characters, so tags never repeat, whatever a store forgets.
func NewTag() string { return NewID() }

// NewID returns a new session id: 128 bits from crypto/rand, URL-safe, 22
// characters.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	var text [22]byte
	base64.RawURLEncoding.Encode(text[:], b[:])
	return string(text[:])
}

// Optional interfaces. The handler finds them on its store by type
// assertion; a store that implements none still works, it is only described
// less on the admin endpoint and in the metrics.

// Counter is a store that knows what it holds without a round trip to
// anything (the memory store). The admin endpoint lists each one's sessions
// by app, and the caddy_ownid_sessions_live_sessions metric counts them.
type Counter interface {
	// Usage is what the store holds now. It must be cheap: every metrics
	// scrape calls it.
	Usage() Usage

	// SessionsByApp counts the sessions held for each app (Owner.App),
	// counted as Usage counts them.
	SessionsByApp() map[string]int
}

// Usage is what a Counter holds.
type Usage struct {
	// Name names the sessions counted: stores that share their sessions
	// (handlers that name the same memory store) report the same Name and
	// are counted once. It labels the store in the metrics and on the
	// admin endpoint.
	Name string
	// Sessions is how many sessions the store holds, those that expired
	// included until the store removes them.
	Sessions int64
	// Bytes is what those sessions count against the store's byte budget;
	// 0 when it keeps none.
	Bytes int64
}

// Describer is a store that describes itself in a few words for the admin
// endpoint (say "memory:default" or "redis:host:6379 prefix:"). The
// description must hold no secret: no password, token or key.
type Describer interface {
	// Describe returns the description, without any secret.
	Describe() string
}
