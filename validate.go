package ownidsessions

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pb33f/jsonschema/v6"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/helpers"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// checkMediaType answers 415 unless the request's Content-Type is one the
// operation declares for its body (a declared application/json accepts any
// application/*+json too). It also says whether the body is JSON.
func checkMediaType(r *http.Request, declared []string) (isJSON bool, p *problem) {
	contentType := r.Header.Get("Content-Type")
	if mt, ok := declaredMediaType(contentType, declared); ok {
		if !isJSONMediaType(mt) {
			return false, nil
		}
		// JSON is UTF-8 (RFC 8259 §8.1): a body declared in another
		// charset would be read otherwise than it was checked. A header
		// that is its bare media type has no parameters to read.
		if contentType != mt {
			if _, params, _ := mime.ParseMediaType(contentType); params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8") {
				return false, newProblem(kindUnsupportedMediaType, "send JSON as UTF-8")
			}
		}
		return true, nil
	}
	return false, newProblem(kindUnsupportedMediaType, "send the body as "+strings.Join(declared, " or "))
}

// declaredMediaType matches a Content-Type header against declared media
// types (exact, type/*, */*; a declared application/json accepts any
// application/*+json too), and returns the header's media type.
func declaredMediaType(contentType string, declared []string) (string, bool) {
	if contentType == "application/json" && slices.Contains(declared, contentType) {
		return contentType, true // the common case, matched the same way without mime's map
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", false
	}
	for _, d := range declared {
		if dt, _, err := mime.ParseMediaType(d); err == nil {
			d = dt
		}
		if d == mt || d == "*/*" ||
			strings.HasSuffix(d, "/*") && strings.HasPrefix(mt, d[:len(d)-1]) ||
			d == "application/json" && isJSONMediaType(mt) {
			return mt, true
		}
	}
	return mt, false
}

// requestLimits are the handler's settings that the request check needs.
type requestLimits struct {
	maxBody int64
	strict  bool
}

// checkRequest checks a request on a route of the document, in the
// contract's order: the method (405), the session id, what could make a
// backend read the request otherwise (400), the media type (415), the size
// (413), the JSON (400), then parameters and body against the document
// (400). It returns the body it read, if the operation declares one.
func (c *contract) checkRequest(r *http.Request, rt route, limits requestLimits) (*requestBody, *problem) {
	if rt.op == nil {
		return nil, newProblem(kindMethodNotAllowed, r.Method+" is not declared on this path").
			withHeader("Allow", rt.info.allow)
	}
	if rt.template == itemPath && c.sessions && !validSessionID(rt.sessionID) {
		p := newProblem(kindInvalidSessionID, "a session id is 1 to 128 characters from A-Z a-z 0-9 . _ ~ -")
		p.errors = []fieldError{{Location: "sessionId", Message: "not a valid session id"}}
		return nil, p
	}
	if p := checkEnvelope(r); p != nil {
		return nil, p
	}
	op := rt.op
	if p := checkQueryNames(r, op.singleQuery); p != nil {
		return nil, p
	}
	hasBody := r.ContentLength != 0 || len(r.TransferEncoding) > 0
	if !op.hasBody && hasBody {
		// A backend could read a body the document does not describe.
		return nil, newProblem(kindInvalidRequest, r.Method+" takes no body on this path")
	}
	var body *requestBody
	if op.hasBody && (op.bodyRequired || hasBody || r.Header.Get("Content-Type") != "") {
		isJSON, p := checkMediaType(r, op.bodyTypes)
		if p != nil {
			return nil, p
		}
		body = &requestBody{}
		if body.raw, p = readBody(r, limits.maxBody); p != nil {
			return nil, p
		}
		if isJSON {
			if body.doc, p = parseJSON(body.raw); p != nil {
				return nil, p
			}
		}
	}
	if p := c.validateRequest(r, rt, body, limits.strict); p != nil {
		return nil, p
	}
	return body, nil
}

// validateRequest checks the request against the contract: parameters and
// body. body is the request body already read (nil when there is none).
// The request itself is not touched. The operation was worked out when the
// document loaded, so nothing is routed or compiled here: parameters go to
// the library's parameter validators (unless none can fail) and a JSON body
// to its compiled schema.
func (c *contract) validateRequest(r *http.Request, rt route, body *requestBody, strictMode bool) *problem {
	info, op := rt.info, rt.op
	var fields []fieldError
	if body != nil && body.doc != nil {
		fields = append(fields, op.caseVariants(body.doc)...)
	}
	if strictMode {
		fields = append(fields, c.undeclared(r, op, body)...)
	}
	if len(op.pathChecks) > 0 {
		values := c.pathValues(info, rt)
		for _, pc := range op.pathChecks {
			for _, fe := range validateValue(pc.schema, values[pc.variable]) {
				fields = append(fields, fieldError{Location: pc.name, Message: fe.Message})
			}
		}
	}
	var vr *http.Request
	if op.checkParams {
		vr = contractRequest(r, rt, body)
		pv := c.validator.GetParameterValidator()
		for _, check := range []func(*http.Request, *v3.PathItem, string) (bool, []*verrors.ValidationError){
			pv.ValidatePathParamsWithPathItem,
			pv.ValidateQueryParamsWithPathItem,
			pv.ValidateHeaderParamsWithPathItem,
			pv.ValidateCookieParamsWithPathItem,
		} {
			if ok, errs := check(vr, info.item, rt.template); !ok {
				fields = append(fields, fieldErrors(errs)...)
			}
		}
	}
	if body != nil {
		if op.bodySchema != nil && body.doc != nil {
			fields = append(fields, validateValue(op.bodySchema, body.doc.value)...)
		} else {
			if vr == nil {
				vr = contractRequest(r, rt, body)
			}
			if ok, errs := c.validator.GetRequestBodyValidator().ValidateRequestBodyWithPathItem(vr, info.item, rt.template); !ok {
				fields = append(fields, fieldErrors(errs)...)
			}
		}
	}
	if len(fields) == 0 {
		return nil
	}
	p := newProblem(kindInvalidRequest, "the request does not match the session contract")
	p.errors = fields
	return p
}

// pathValues are the values of the path's template variables, in order.
// The session contract's one variable is the session id its route found.
func (c *contract) pathValues(info *pathInfo, rt route) []string {
	if c.sessions && rt.template == itemPath {
		return []string{rt.sessionID}
	}
	m := info.pattern.FindStringSubmatch(rt.path)
	if m == nil {
		return make([]string, len(info.variables))
	}
	return m[1:]
}

// caseVariants reports top-level members whose name differs only in letter
// case from a property the operation declares ("Payload" beside
// "payload"): parsers that match names without case would read them as the
// declared one.
func (op *operation) caseVariants(doc *jsonDoc) []fieldError {
	var fields []fieldError
	for _, m := range doc.members {
		if methodOverride(m.name) && !slices.Contains(op.bodyProperties, m.name) {
			fields = append(fields, fieldError{Location: jsonPointer([]string{m.name}), Message: "a member that rewrites the method is not accepted"})
			continue
		}
		if slices.Contains(op.bodyProperties, m.name) {
			continue
		}
		for _, declared := range op.bodyProperties {
			if strings.EqualFold(m.name, declared) {
				fields = append(fields, fieldError{Location: jsonPointer([]string{m.name}), Message: "differs only in letter case from the declared property " + declared})
				break
			}
		}
	}
	return fields
}

// validateValue checks a parsed JSON value against a compiled schema,
// returning one error per failing location.
func validateValue(schema *jsonschema.Schema, v any) []fieldError {
	err := schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []fieldError{{Location: "", Message: "the body cannot be validated"}}
	}
	var fields []fieldError
	printer := message.NewPrinter(language.Tag{})
	for _, unit := range helpers.FlattenSchemaOutputErrors(ve.DetailedOutput()) {
		if unit.Error == nil || unit.KeywordLocation == "" {
			continue
		}
		msg := unit.Error.Kind.LocalizedString(printer)
		if helpers.IgnoreRegex.MatchString(msg) {
			continue // the library's list of messages that only say "see below"
		}
		fields = append(fields, fieldError{
			Location: jsonPointer(helpers.ConvertStringLocationToPathSegments(unit.InstanceLocation)),
			Message:  msg,
		})
	}
	if len(fields) == 0 {
		fields = append(fields, fieldError{Location: "", Message: ve.Error()})
	}
	return fields
}

// checkResponse checks the next handler's answer against the operation's
// declared responses: the status must be declared (exactly, by range such as
// 2XX, or by default), the media type must be one declared for it, and a
// JSON body must match the schema compiled for it. Other media types go to
// the library's response body validator.
func (c *contract) checkResponse(r *http.Request, rt route, resp *http.Response, body []byte) []fieldError {
	info := rt.info
	d, ok := rt.op.declaredResponse(resp.StatusCode)
	if !ok {
		return []fieldError{{Location: "status", Message: "status " + strconv.Itoa(resp.StatusCode) + " is not declared"}}
	}
	if len(d.mediaTypes) == 0 {
		return nil // nothing declared about the body
	}
	mt, ok := declaredMediaType(resp.Header.Get("Content-Type"), d.mediaTypes)
	if !ok {
		return []fieldError{{Location: "Content-Type", Message: "not a media type declared for status " + strconv.Itoa(resp.StatusCode)}}
	}
	if !isJSONMediaType(mt) || d.jsonSchema == nil {
		if ok, errs := c.validator.GetResponseBodyValidator().ValidateResponseBodyWithPathItem(contractRequest(r, rt, nil), resp, info.item, rt.template); !ok {
			return fieldErrors(errs)
		}
		return nil
	}
	// The same one-pass parser as requests: well-formed, UTF-8, no key
	// repeated in an object, nested at most 64 deep.
	doc, p := parseJSON(body)
	if p != nil {
		return []fieldError{{Location: "", Message: p.detail}}
	}
	return validateValue(d.jsonSchema, doc.value)
}

// contractRequest is the request as the document sees it: its path below the
// app prefix (or server base path), with the body already read.
func contractRequest(r *http.Request, rt route, body *requestBody) *http.Request {
	var raw []byte
	if body != nil {
		raw = body.raw
	}
	vr := new(http.Request)
	*vr = *r
	vr.URL = &url.URL{Path: rt.path, RawQuery: r.URL.RawQuery}
	vr.Body = io.NopCloser(bytes.NewReader(raw))
	vr.ContentLength = int64(len(raw))
	return vr
}

// fieldErrors turns the validator's errors into the problem's errors list:
// one entry per failing field, located by JSON pointer, or by parameter name
// for a parameter.
func fieldErrors(errs []*verrors.ValidationError) []fieldError {
	var out []fieldError
	for _, e := range errs {
		if len(e.SchemaValidationErrors) == 0 {
			loc := e.ParameterName
			msg := e.Reason
			if msg == "" {
				msg = e.Message
			}
			out = append(out, fieldError{Location: loc, Message: msg})
			continue
		}
		for _, f := range e.SchemaValidationErrors {
			loc := jsonPointer(f.InstancePath)
			if e.ParameterName != "" {
				loc = e.ParameterName + loc
			}
			out = append(out, fieldError{Location: loc, Message: f.Reason})
		}
	}
	return out
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// jsonPointer renders path segments as an RFC 6901 pointer ("" is the whole
// document).
func jsonPointer(segments []string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(s))
	}
	return b.String()
}
