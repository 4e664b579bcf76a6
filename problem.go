package ownidsessions

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// problemTypeBase prefixes every problem type. The types are URNs: stable
// identifiers, documented in the README, that nobody needs to dereference.
const problemTypeBase = "urn:ownid-sessions:problem:"

// Kinds of failure. Each has its own problem type and one status.
type problemKind int

const (
	kindInvalidRequest problemKind = iota
	kindMalformedJSON
	kindInvalidSessionID
	kindInvalidCursor
	kindMissingToken
	kindInvalidToken
	kindSessionEnded
	kindForbidden
	kindInsufficientScope
	kindNotFound
	kindUndescribedPath
	kindMethodNotAllowed
	kindPreconditionFailed
	kindBodyTooLarge
	kindBodyTimeout
	kindUnsupportedMediaType
	kindTooManySessions
	kindIdempotencyKeyReused
	kindBadUpstreamResponse
	kindStoreUnavailable
	kindStoreOutcomeUnknown
	kindStoreFull
	kindInternal
)

var problemKinds = [...]struct {
	slug   string
	title  string
	status int
}{
	kindInvalidRequest:       {"invalid-request", "The request breaks the session contract", http.StatusBadRequest},
	kindMalformedJSON:        {"malformed-json", "The request body is not valid JSON", http.StatusBadRequest},
	kindInvalidSessionID:     {"invalid-session-id", "The session id is not valid", http.StatusBadRequest},
	kindInvalidCursor:        {"invalid-cursor", "The page cursor is not valid", http.StatusBadRequest},
	kindMissingToken:         {"missing-token", "A bearer token is required", http.StatusUnauthorized},
	kindInvalidToken:         {"invalid-token", "The bearer token is not valid", http.StatusUnauthorized},
	kindSessionEnded:         {"session-ended", "The session of this token has ended", http.StatusUnauthorized},
	kindForbidden:            {"claim-requirement-failed", "The token does not meet a requirement", http.StatusForbidden},
	kindNotFound:             {"session-not-found", "No such session", http.StatusNotFound},
	kindInsufficientScope:    {"insufficient-scope", "The token lacks a scope the operation needs", http.StatusForbidden},
	kindUndescribedPath:      {"undescribed-path", "No such path in the document", http.StatusNotFound},
	kindMethodNotAllowed:     {"method-not-allowed", "Method not allowed on this path", http.StatusMethodNotAllowed},
	kindPreconditionFailed:   {"precondition-failed", "The session has changed", http.StatusPreconditionFailed},
	kindBodyTooLarge:         {"body-too-large", "The request body is too large", http.StatusRequestEntityTooLarge},
	kindBodyTimeout:          {"body-timeout", "The request body did not arrive in time", http.StatusRequestTimeout},
	kindUnsupportedMediaType: {"unsupported-media-type", "The request body must be JSON", http.StatusUnsupportedMediaType},
	kindTooManySessions:      {"too-many-sessions", "The account holds too many sessions", http.StatusTooManyRequests},
	kindIdempotencyKeyReused: {"idempotency-key-reused", "The Idempotency-Key was used for another request", http.StatusUnprocessableEntity},
	kindBadUpstreamResponse:  {"bad-upstream-response", "The upstream answer breaks the contract", http.StatusBadGateway},
	kindStoreUnavailable:     {"store-unavailable", "The session store cannot be reached", http.StatusServiceUnavailable},
	kindStoreOutcomeUnknown:  {"store-outcome-unknown", "The session store did not confirm the write", http.StatusServiceUnavailable},
	kindStoreFull:            {"store-full", "The session store is full", http.StatusServiceUnavailable},
	kindInternal:             {"internal-error", "Internal error", http.StatusInternalServerError},
}

func (k problemKind) typeURI() string { return problemTypeBase + problemKinds[k].slug }
func (k problemKind) status() int     { return problemKinds[k].status }

// fieldError locates one validation failure.
type fieldError struct {
	Location string `json:"location"`
	Message  string `json:"message"`
}

// problem is a rejection: it knows its kind (and so its status and type), a
// detail for the client, and the headers its status calls for. It is an
// error so that it can travel up from any layer and be written in one place.
type problem struct {
	kind    problemKind
	detail  string
	errors  []fieldError
	headers [][2]string
	// reason is a bounded label for a token failure, for the metrics.
	reason string
}

func newProblem(kind problemKind, detail string) *problem {
	return &problem{kind: kind, detail: detail}
}

func (p *problem) Error() string { return problemKinds[p.kind].slug + ": " + p.detail }

// withHeader adds a response header to the problem.
func (p *problem) withHeader(name, value string) *problem {
	p.headers = append(p.headers, [2]string{name, value})
	return p
}

// problemBody is the RFC 9457 document.
type problemBody struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail"`
	Errors []fieldError `json:"errors,omitempty"`
}

// write sends the problem. The body is encoded in full before the header is
// written, so a client never sees a partial answer.
func (p *problem) write(w http.ResponseWriter) {
	k := problemKinds[p.kind]
	// Marshal cannot fail on strings and ints (invalid UTF-8 is replaced).
	body, _ := json.Marshal(problemBody{
		Type:   p.kind.typeURI(),
		Title:  k.title,
		Status: k.status,
		Detail: p.detail,
		Errors: p.errors,
	})
	hdr := w.Header()
	for _, h := range p.headers {
		hdr.Set(h[0], h[1])
	}
	hdr.Set("Content-Type", "application/problem+json")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Del("ETag")
	hdr.Del("Location")
	w.WriteHeader(k.status)
	_, _ = w.Write(body)
}
