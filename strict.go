package ownidsessions

import (
	"net/http"
	"strings"

	"github.com/pb33f/libopenapi-validator/strict"
)

// undeclared is strict mode: query parameters, headers and body properties
// the operation does not declare, found by the validator's strict checks.
// What is inside a "payload" member is the client's own data and never
// looked at.
func (c *contract) undeclared(r *http.Request, op *operation, body *requestBody) []fieldError {
	var found []strict.UndeclaredValue
	found = append(found, strict.ValidateQueryParams(r, op.params, c.strictOptions)...)
	found = append(found, strict.ValidateRequestHeaders(r.Header, op.params, op.securityHeaders, c.strictOptions)...)
	if op.bodyModel != nil && body != nil && body.doc != nil {
		if res := strict.ValidateBody(op.bodyModel, body.doc.value, strict.DirectionRequest, c.strictOptions, c.version); res != nil {
			found = append(found, res.UndeclaredValues...)
		}
	}
	fields := make([]fieldError, 0, len(found))
	for _, u := range found {
		loc := u.Name // a query parameter, header or cookie, by name
		if rest, ok := strings.CutPrefix(u.Path, "$.body"); ok {
			loc = jsonPointer(jsonPathSegments(rest))
		}
		fields = append(fields, fieldError{Location: loc, Message: u.Type + " not declared by the document"})
	}
	return fields
}

// jsonPathSegments splits the validator's JSONPath below $.body (".a",
// "['a.b']", "[0]") into segments.
func jsonPathSegments(p string) []string {
	var segs []string
	for p != "" {
		switch {
		case strings.HasPrefix(p, "['"):
			end := strings.Index(p, "']")
			if end < 0 {
				return append(segs, p)
			}
			segs = append(segs, strings.ReplaceAll(p[2:end], `\'`, "'"))
			p = p[end+2:]
		case p[0] == '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return append(segs, p)
			}
			segs = append(segs, p[1:end])
			p = p[end+1:]
		case p[0] == '.':
			p = p[1:]
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				end = len(p)
			}
			segs = append(segs, p[:end])
			p = p[end:]
		default:
			return append(segs, p)
		}
	}
	return segs
}

// strictIgnoredHeaders are request headers that strict mode accepts beside
// the validator's own list of standard ones (Content-Type, Authorization,
// Accept, If-Match, X-Forwarded-For, …): what proxies and browsers add.
var strictIgnoredHeaders = []string{
	"x-forwarded-host", "x-forwarded-port", "forwarded", "via",
	"traceparent", "tracestate", "te", "accept-charset",
}
