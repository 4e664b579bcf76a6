package ownidsessions

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// Owner is who a session belongs to, as the store keeps it; auth.go makes
// one from the verified token.
type Owner = store.Owner

// ServeHTTP reads as the request's path through the module: route the
// canonical path, verify the token, work out the owner and the app, check
// the request against the document, then serve it from the store or
// forward it. Every rejection leaves through one exit, which writes the
// problem and records the metrics.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := time.Now()
	if h.metadataPath != "" && r.URL.Path == h.metadataPath {
		return h.serveMetadata(w, r)
	}
	rt, class := h.contract.classify(r.URL.EscapedPath(), r.Method)
	var p *problem
	status := 0
	switch class {
	case pathUndescribed:
		if h.Undescribed == UndescribedPass {
			return next.ServeHTTP(w, r)
		}
		p = newProblem(kindUndescribedPath, "the document describes no such path")
	case pathNearMiss:
		p = newProblem(kindInvalidRequest, "the path is not in its canonical form, but read leniently it is a path of the contract: spell it with unreserved characters only, without dot segments, empty segments, ';' parameters or escapes, in the contract's letter case")
		p.errors = []fieldError{{Location: "path", Message: "not a canonical path of the contract"}}
	case pathContract:
		// Hand on exactly the path that was routed and checked.
		r.URL.Path, r.URL.RawPath = r.URL.EscapedPath(), ""
		if h.preflight(r) {
			// A preflight goes on without a token, so it must carry
			// nothing a backend could act on.
			if p = checkEnvelope(r); p == nil && (r.ContentLength != 0 || len(r.TransferEncoding) > 0) {
				p = newProblem(kindInvalidRequest, "a preflight takes no body")
			}
			if p == nil {
				return next.ServeHTTP(w, r)
			}
			break
		}
		var owner Owner
		var body *requestBody
		if owner, p = h.authorize(r, rt); p == nil {
			body, p = h.contract.checkRequest(r, rt, requestLimits{maxBody: h.MaxBody, strict: h.Strict})
		}
		if p == nil && h.Mode == ModeForward {
			outcome, slug, own, err := h.forward(w, r, rt, body, next, start)
			h.record(rt.operation(), outcome, slug, own)
			if err == errAnswerCut {
				panic(http.ErrAbortHandler) // counted; the client has part of an answer
			}
			return err
		}
		if p == nil {
			status, p = h.serve(w, r, rt, owner, body)
		}
	}
	slug := ""
	if p != nil {
		status, slug = p.kind.status(), problemKinds[p.kind].slug
		if p.reason != "" {
			metrics.tokenFailures.WithLabelValues(p.reason).Inc()
		}
		h.logger.Debug("request rejected",
			zap.String("problem", slug),
			zap.Int("status", status),
			zap.String("detail", p.detail),
			zap.String("operation", rt.operation()),
			zap.String("app", rt.app))
		p.write(w)
	}
	h.record(rt.operation(), statusClass(status), slug, time.Since(start))
	return nil
}

// record counts a request the module answered or forwarded, and the time
// the module spent on it.
func (h *Handler) record(operation, outcome, problemSlug string, spent time.Duration) {
	c := childrenOf(requestLabels{operation, outcome, problemSlug})
	c.requests.Inc()
	c.duration.Observe(spent.Seconds())
}

// authorize verifies the token (and its claim rules), holds it to the
// operation's security, works out the owner in serve mode and checks that
// the token may use the app; it makes the
// claims available as placeholders to later handlers.
func (h *Handler) authorize(r *http.Request, rt route) (Owner, *problem) {
	var owner Owner
	if p := checkApp(rt.app); p != nil {
		return owner, p
	}
	id, refused := h.verifier.Verify(r)
	if refused != nil {
		if !refused.TokenSent && h.publicOperation(rt) {
			return owner, nil // a token that is sent is still verified
		}
		return owner, h.withMetadata(tokenProblem(refused))
	}
	if rt.op != nil {
		if p := h.authorizeOperation(rt.op.security, id); p != nil {
			return owner, h.withMetadata(p)
		}
	}
	if strings.ContainsRune(id.Subject, 0) || strings.ContainsRune(id.Issuer, 0) {
		// In both modes: a NUL ends a string for some readers.
		return owner, tokenProblem(jwtauth.Invalid("claims", "the token's sub or iss claim holds a NUL character"))
	}
	if h.Mode == ModeServe {
		var p *problem
		if owner, p = ownerOf(id, rt.app); p != nil {
			return owner, p
		}
	}
	if !h.appAllowed(rt.app, id) {
		// As for a session that does not exist: no oracle of which apps
		// there are, and nothing stored or forwarded.
		return owner, newProblem(kindNotFound, "no such session for this app and account")
	}
	if p := h.checkBoundSession(r.Context(), id, rt.app); p != nil {
		return owner, p
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(id.Resolver())
	}
	return owner, nil
}

// serve answers the operation from the store. It writes the success
// response itself and returns any rejection for ServeHTTP to write.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt route, owner Owner, body *requestBody) (int, *problem) {
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && (body == nil || body.doc == nil) {
		// Only a spec of the user's can leave a write without a JSON body.
		return 0, newProblem(kindInvalidRequest, "a JSON object body is required")
	}
	now := h.now().UTC().Truncate(time.Millisecond)
	ctx := r.Context()
	switch {
	case rt.template == collectionPath && r.Method == http.MethodPost:
		// The contract checked the body: an object whose timeout, if any,
		// is an integer from 1 to 31536000.
		timeout := time.Duration(h.SessionTimeout)
		if raw := body.doc.member("timeout"); raw != nil {
			seconds, err := strconv.ParseFloat(string(raw), 64)
			if err != nil || seconds < 1 || seconds > maxSessionTimeout.Seconds() {
				return 0, newProblem(kindInvalidRequest, "timeout must be a whole number of seconds from 1 to 31536000")
			}
			timeout = time.Duration(seconds) * time.Second
		}
		// And an expiration, if any, that is an integer from 1 on.
		lifetime := time.Duration(h.MaxLifetime)
		if raw := body.doc.member("expiration"); raw != nil {
			seconds, err := strconv.ParseFloat(string(raw), 64)
			if err != nil || seconds < 1 || seconds != float64(int64(seconds)) {
				return 0, newProblem(kindInvalidRequest, "expiration must be a whole number of seconds from 1 on")
			}
			asked := time.Duration(min(seconds, maxSessionLifetime.Seconds())) * time.Second
			if lifetime == 0 || asked < lifetime {
				lifetime = asked
			}
		}
		var expires time.Time
		if lifetime > 0 {
			expires = now.Add(lifetime)
		}
		idem, p := h.idempotency(r, body)
		if p != nil {
			return 0, p
		}
		s, err := h.store.Create(ctx, owner, store.Session{
			ID:         store.NewID(),
			Created:    now,
			LastActive: now,
			Timeout:    timeout,
			Expires:    expires,
			Payload:    compact(body.doc.member("payload")),
		}, h.MaxSessions, idem, now)
		if err != nil {
			return 0, h.storeProblem(err)
		}
		// The path was routed in its canonical form: it starts with exactly
		// one "/", so the Location is a path on this host, never "//host".
		w.Header().Set("Location", r.URL.Path+"/"+s.ID)
		return writeJSON(w, http.StatusCreated, s.ETag(), appendSession(sessionBuffer(&s), &s))

	case rt.template == collectionPath && r.Method == http.MethodDelete:
		// The contract checked except: a session id, when present.
		except := r.URL.Query().Get("except")
		n, err := h.store.DeleteAll(ctx, owner, except, now)
		if err != nil {
			return 0, h.storeProblem(err)
		}
		h.forgetLive(owner, "", except)
		hdr := w.Header()
		hdr.Set("Sessions-Deleted", strconv.Itoa(n))
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, nil

	case rt.template == collectionPath: // GET
		limit, after, p := h.listPage(r.URL.Query(), owner)
		if p != nil {
			return 0, p
		}
		sessions, err := h.store.List(ctx, owner, now)
		if err != nil {
			return 0, h.storeProblem(err)
		}
		sessions, more := pageOf(sessions, after, limit)
		if more {
			next := encodeCursor(h.cursorKey, owner, &sessions[len(sessions)-1])
			w.Header().Set("Link", nextLink(r.URL.Path, limit, next))
		}
		body := append(make([]byte, 0, 256*len(sessions)+2), '[')
		for i := range sessions {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendSession(body, &sessions[i])
		}
		return writeJSON(w, http.StatusOK, "", append(body, ']'))

	case r.Method == http.MethodGet:
		s, err := h.store.Get(ctx, owner, rt.sessionID, now)
		if err != nil {
			return 0, h.storeProblem(err)
		}
		return writeJSON(w, http.StatusOK, s.ETag(), appendSession(sessionBuffer(&s), &s))

	case r.Method == http.MethodPut:
		s, err := h.store.Update(ctx, owner, rt.sessionID, compact(body.doc.member("payload")),
			store.ParseIfMatch(r.Header.Values("If-Match")), now)
		if err != nil {
			return 0, h.storeProblem(err)
		}
		return writeJSON(w, http.StatusOK, s.ETag(), appendSession(sessionBuffer(&s), &s))

	case r.Method == http.MethodDelete:
		err := h.store.Delete(ctx, owner, rt.sessionID, store.ParseIfMatch(r.Header.Values("If-Match")), now)
		if err != nil {
			return 0, h.storeProblem(err)
		}
		h.forgetLive(owner, rt.sessionID, "")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, nil
	}
	// checkRequest let through a method the contract declares but this
	// module does not implement: only possible with an edited contract.
	return 0, newProblem(kindMethodNotAllowed, r.Method+" is not served on this path").
		withHeader("Allow", rt.info.allow)
}

// appAllowed says whether the token may use app, compared without its
// leading "/" (OwnID's {appId}): it must be one of apps, when they are
// set, and equal the app_claim claim (or one of its values), when that is
// set.
func (h *Handler) appAllowed(app string, id *jwtauth.Identity) bool {
	name := strings.TrimPrefix(app, "/")
	if len(h.Apps) > 0 && !slices.Contains(h.Apps, name) {
		return false
	}
	if h.AppClaim == "" {
		return true
	}
	switch v := id.Claims[h.AppClaim].(type) {
	case string:
		return v == name
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s == name {
				return true
			}
		}
	}
	return false
}

// storeProblem maps a store error to its problem.
func (h *Handler) storeProblem(err error) *problem {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newProblem(kindNotFound, "no such session for this app and account")
	case errors.Is(err, store.ErrPreconditionFailed):
		return newProblem(kindPreconditionFailed, "If-Match does not match the session's current ETag; nothing was changed")
	case errors.Is(err, store.ErrIdempotencyMismatch):
		return newProblem(kindIdempotencyKeyReused, "this Idempotency-Key was used for a create with another body; use a new key for a new request")
	case errors.Is(err, store.ErrTooManySessions):
		return newProblem(kindTooManySessions, "the account already holds "+strconv.Itoa(h.MaxSessions)+" live sessions")
	case errors.Is(err, store.ErrStoreFull):
		retry := time.Minute
		var full store.StoreFullError
		if errors.As(err, &full) && full.RetryAfter > 0 {
			retry = full.RetryAfter
		}
		return newProblem(kindStoreFull, "the session store holds its maximum of live sessions; try again later").
			withHeader("Retry-After", strconv.Itoa(int(max(time.Second, retry)/time.Second)))
	}
	if errors.Is(err, store.ErrOutcomeUnknown) {
		h.logger.Error("session store did not confirm a write", zap.Error(err))
		return newProblem(kindStoreOutcomeUnknown, "the session store did not confirm the write in time: it may have been applied; read the session (or retry a create with the same Idempotency-Key) to know").
			withHeader("Retry-After", "1")
	}
	h.logger.Error("session store failed", zap.Error(err))
	return newProblem(kindStoreUnavailable, "the session store did not answer; nothing was written").
		withHeader("Retry-After", "1")
}

// timeLayout is RFC 3339 with milliseconds; times are always UTC ("Z").
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// appendTime appends t in UTC as timeLayout does
// (2006-01-02T15:04:05.000Z), digit by digit: AppendFormat reads its layout
// on every call, at six times the cost, three times per session answered.
// Years outside 0..9999 (never a session's) take AppendFormat.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendSession appends the contract's JSON of a session:
// {"id","created","timeout","lastActive"[,"expiresAt"],"payload"}, with
// expiresAt only for a session that has an absolute end. Nothing in it needs
// escaping: ids are base64url, the times are formatted here, and the payload
// is the compact JSON object the store keeps.
func appendSession(b []byte, s *store.Session) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, s.ID...)
	b = append(b, `","created":"`...)
	b = appendTime(b, s.Created)
	b = append(b, `","timeout":`...)
	b = strconv.AppendInt(b, int64(s.Timeout/time.Second), 10)
	b = append(b, `,"lastActive":"`...)
	b = appendTime(b, s.LastActive)
	if !s.Expires.IsZero() {
		b = append(b, `","expiresAt":"`...)
		b = appendTime(b, s.Expires)
	}
	b = append(b, `","payload":`...)
	if s.Payload == nil {
		b = append(b, `{}`...)
	} else {
		b = append(b, s.Payload...)
	}
	return append(b, '}')
}

// sessionBuffer is an empty buffer large enough for appendSession(s).
func sessionBuffer(s *store.Session) []byte {
	return make([]byte, 0, 160+len(s.ID)+len(s.Payload))
}

// writeJSON sends a JSON body, encoded in full beforehand, with its status
// (and ETag), and returns the status.
func writeJSON(w http.ResponseWriter, status int, etag string, body []byte) (int, *problem) {
	// The names are canonical already, and the values share one
	// allocation (each its own slice, capped, so that a later handler's
	// append or edit stays with its header).
	hdr := w.Header()
	v := make([]string, 5)
	v[0], v[1], v[2], v[3], v[4] = "application/json", strconv.Itoa(len(body)), "no-store", "nosniff", etag
	hdr["Content-Type"], hdr["Content-Length"] = v[0:1:1], v[1:2:2]
	hdr["Cache-Control"], hdr["X-Content-Type-Options"] = v[2:3:3], v[3:4:4]
	if etag != "" {
		hdr["Etag"] = v[4:5:5]
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status, nil
}
