package ownidsessions

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// What validate_responses does with the next handler's answer.
const (
	ResponsesOff     = "off"
	ResponsesReport  = "report"
	ResponsesEnforce = "enforce"
)

const defaultResponseBuffer = 1 << 20

// forward hands a request that passed the checks to the next handler, with
// the body it read put back byte for byte, and checks the answer against the
// contract unless validate_responses is off. It returns the outcome for the
// metrics ("forwarded", or the class of the status sent), the problem type
// of an answer it refused, and the module's own time: before the next
// handler, and the check after it.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, rt route, body *requestBody, next caddyhttp.Handler, start time.Time) (outcome, problemSlug string, own time.Duration, err error) {
	own = time.Since(start)
	outcome = "forwarded"
	r.Trailer = nil // refused when declared; nothing after the body goes on
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body.raw))
		r.ContentLength = int64(len(body.raw))
		r.TransferEncoding = nil
		r.Header.Set("Content-Length", strconv.Itoa(len(body.raw)))
	}
	if h.ValidateResponses == ResponsesOff {
		aborted, err := serveNext(next, w, r)
		if aborted {
			err = errAnswerCut
		}
		return outcome, "", own, err
	}
	// The contract describes bodies, not their compressed bytes: ask the
	// backend for identity encoding (an encode handler can compress after).
	r.Header.Del("Accept-Encoding")
	rc := &responseCheck{w: w, limit: h.ResponseBuffer, header: w.Header().Clone(), buf: heldAnswers.Get().(*bytes.Buffer), op: rt.op}
	defer rc.done()
	aborted, err := serveNext(next, rc, r)
	if err != nil {
		return outcome, "", own, err
	}
	checked := time.Now()
	defer func() { own += time.Since(checked) }()
	if aborted {
		metrics.responses.WithLabelValues("incomplete").Inc()
		if rc.streaming {
			return outcome, "", own, errAnswerCut
		}
		// The backend's answer broke off while it was still held: the
		// client has had nothing of it, and gets an answer rather than a
		// closed connection.
		h.logger.Warn("upstream answer broke off before its end",
			zap.String("method", r.Method),
			zap.String("path", rt.template),
			zap.String("app", rt.app),
			zap.String("validate_responses", h.ValidateResponses))
		if h.ValidateResponses != ResponsesEnforce {
			// As reverse_proxy answers a backend that fails before its
			// answer: an error for Caddy's error handling.
			return outcome, "", own, caddyhttp.Error(http.StatusBadGateway, errIncompleteAnswer)
		}
		outcome, problemSlug = refuseAnswer(w, "the upstream answer broke off before its end", nil)
		return outcome, problemSlug, own, nil
	}
	if rc.streaming && rc.checkedStatus {
		responsesValid.Inc()
		return statusClass(rc.status), "", own, nil
	}
	if rc.streaming {
		metrics.responses.WithLabelValues("unchecked_too_large").Inc()
		return outcome, "", own, nil
	}
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	if encoded(rc.Header()) {
		// The contract describes the body, not its compressed bytes.
		metrics.responses.WithLabelValues("unchecked_encoded").Inc()
		return outcome, "", own, rc.release()
	}
	resp := &http.Response{
		StatusCode:    rc.status,
		Header:        rc.Header(),
		Body:          io.NopCloser(bytes.NewReader(rc.buf.Bytes())),
		ContentLength: int64(rc.buf.Len()),
		Request:       r,
	}
	errs := h.contract.checkResponse(r, rt, resp, rc.buf.Bytes())
	outcome = statusClass(rc.status)
	if len(errs) == 0 {
		responsesValid.Inc()
		return outcome, "", own, rc.release()
	}
	metrics.responses.WithLabelValues("violation").Inc()
	// Locations only: a reason can quote a value of the body.
	locations := make([]fieldError, 0, len(errs))
	for _, fe := range errs {
		locations = append(locations, fieldError{Location: fe.Location, Message: "does not match the contract"})
	}
	h.logger.Warn("upstream answer breaks the contract",
		zap.String("method", r.Method),
		zap.String("path", rt.template),
		zap.String("app", rt.app),
		zap.Int("status", rc.status),
		zap.Int("violations", len(errs)),
		zap.Any("locations", locations),
		zap.String("validate_responses", h.ValidateResponses))
	if h.ValidateResponses != ResponsesEnforce {
		return outcome, "", own, rc.release()
	}
	outcome, problemSlug = refuseAnswer(w, "the upstream answer does not match the contract", locations)
	return outcome, problemSlug, own, nil
}

// errIncompleteAnswer is the error of a held answer that broke off.
var errIncompleteAnswer = errors.New("upstream answer broke off before its end")

// refuseAnswer answers 502 in place of a held answer. The refused answer's
// headers are dropped with it; those that earlier handlers set (HSTS, CORS,
// security headers) stay, in w.Header().
func refuseAnswer(w http.ResponseWriter, detail string, locations []fieldError) (outcome, problemSlug string) {
	p := newProblem(kindBadUpstreamResponse, detail)
	p.errors = locations
	p.write(w)
	return statusClass(p.kind.status()), problemKinds[p.kind].slug
}

// errAnswerCut is forward's report of an answer that broke off after part
// of it was sent: the connection must end as the next handler ended it
// (ServeHTTP panics with http.ErrAbortHandler once it has counted the
// request).
var errAnswerCut = errors.New("the answer broke off after part of it was sent")

// serveNext runs the next handler and says whether it gave up on its
// answer with http.ErrAbortHandler (reverse_proxy, when the backend's body
// cannot be read to its end). Any other panic goes on as it came.
func serveNext(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (aborted bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			aborted = true
		}
	}()
	return false, next.ServeHTTP(w, r)
}

// encoded says whether the answer's body has a content coding other than
// identity (codings are case-insensitive, RFC 9110 §8.4.1, and may be
// listed in several fields).
func encoded(h http.Header) bool {
	for _, v := range h.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

// responseCheck holds the next handler's answer, up to limit bytes, so it
// can be checked before any of it is sent. An answer that grows past the
// limit is sent on as it comes, unchecked: nothing is buffered without
// bound. (caddyhttp.ResponseRecorder buffers without a bound, hence this.)
// The answer's headers are held apart too, starting from those earlier
// handlers set, so that a refused answer can be dropped without them.
type responseCheck struct {
	w         http.ResponseWriter
	header    http.Header
	limit     int64
	status    int
	buf       *bytes.Buffer // from heldAnswers
	streaming bool
	// op declares the answers; an answer whose status it declares with no
	// body described is checked in full by its status, and streams
	// (checkedStatus). Nil in tests of the writer alone.
	op            *operation
	checkedStatus bool
}

// heldAnswers are the buffers answers are held in, reused across requests
// (a ResponseWriter is not used after ServeHTTP returns).
var heldAnswers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledAnswer is the largest buffer put back for reuse; larger ones
// (up to response_buffer) are left to the collector.
const maxPooledAnswer = 64 << 10

// done gives the buffer back once the answer has been sent.
func (rc *responseCheck) done() {
	if rc.buf.Cap() <= maxPooledAnswer {
		rc.buf.Reset()
		heldAnswers.Put(rc.buf)
	}
	rc.buf = nil
}

func (rc *responseCheck) Header() http.Header { return rc.header }

// sendHeader puts the held headers in place of w's and writes status.
func (rc *responseCheck) sendHeader(status int) {
	dst := rc.w.Header()
	for k := range dst {
		if _, ok := rc.header[k]; !ok {
			delete(dst, k)
		}
	}
	for k, v := range rc.header {
		dst[k] = v
	}
	rc.w.WriteHeader(status)
}

func (rc *responseCheck) WriteHeader(status int) {
	switch {
	case rc.streaming:
		rc.w.WriteHeader(status)
	case status == http.StatusSwitchingProtocols:
		// An upgrade: the connection is handed over, nothing is held.
		rc.streaming = true
		rc.sendHeader(status)
	case status >= 100 && status < 200:
		rc.sendHeader(status) // informational answers go straight on
	case rc.status == 0:
		rc.status = status
		rc.streamIfBodiless()
	}
}

// streamIfBodiless sends the answer on as it comes when its status says
// all there is to check.
func (rc *responseCheck) streamIfBodiless() {
	if rc.op == nil {
		return
	}
	if d, ok := rc.op.declaredResponse(rc.status); ok && len(d.mediaTypes) == 0 {
		rc.streaming, rc.checkedStatus = true, true
		rc.sendHeader(rc.status)
	}
}

func (rc *responseCheck) Write(p []byte) (int, error) {
	if rc.streaming {
		return rc.w.Write(p)
	}
	if rc.status == 0 {
		rc.status = http.StatusOK
		if rc.streamIfBodiless(); rc.streaming {
			return rc.w.Write(p)
		}
	}
	if int64(rc.buf.Len()+len(p)) <= rc.limit {
		return rc.buf.Write(p)
	}
	rc.streaming = true
	rc.sendHeader(rc.status)
	if _, err := rc.w.Write(rc.buf.Bytes()); err != nil {
		return 0, err
	}
	rc.buf.Reset()
	return rc.w.Write(p)
}

// FlushError flushes only once the answer is streaming: while it is held,
// a flush would send a status line that has not been decided.
func (rc *responseCheck) FlushError() error {
	if !rc.streaming {
		return nil
	}
	return http.NewResponseController(rc.w).Flush()
}

// Unwrap lets http.ResponseController reach the connection (hijacking for
// upgrades, deadlines).
func (rc *responseCheck) Unwrap() http.ResponseWriter { return rc.w }

// release sends the held answer as it was.
func (rc *responseCheck) release() error {
	rc.sendHeader(rc.status)
	_, err := rc.w.Write(rc.buf.Bytes())
	return err
}
