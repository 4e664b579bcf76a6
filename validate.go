package ownidsessions

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// checkMediaType answers 415 unless the request's Content-Type is one the
// operation declares for its body (a declared application/json accepts any
// application/*+json too). It also says whether the body is JSON.
func checkMediaType(r *http.Request, declared []string) (isJSON bool, p *problem) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil {
		isJSON = mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
		for _, d := range declared {
			if dt, _, err := mime.ParseMediaType(d); err == nil {
				d = dt
			}
			if d == mt || d == "*/*" ||
				strings.HasSuffix(d, "/*") && strings.HasPrefix(mt, d[:len(d)-1]) ||
				d == "application/json" && isJSON {
				return isJSON, nil
			}
		}
	}
	return false, newProblem(kindUnsupportedMediaType, "send the body as "+strings.Join(declared, " or "))
}

// validateRequest checks the request against the contract: parameters and
// body. path is the request path below the app prefix, body the request body
// already read (nil when there is none). The request itself is not touched.
func (c *contract) validateRequest(r *http.Request, rt route, body []byte) *problem {
	ok, errs := c.validator.ValidateHttpRequestSync(contractRequest(r, rt, body))
	if ok {
		return nil
	}
	p := newProblem(kindInvalidRequest, "the request does not match the session contract")
	p.errors = fieldErrors(errs)
	return p
}

// contractRequest is the request as the document sees it: its path below the
// app prefix (or server base path), with the body already read.
func contractRequest(r *http.Request, rt route, body []byte) *http.Request {
	vr := new(http.Request)
	*vr = *r
	vr.URL = &url.URL{Path: rt.path, RawQuery: r.URL.RawQuery}
	vr.Body = io.NopCloser(bytes.NewReader(body))
	vr.ContentLength = int64(len(body))
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
