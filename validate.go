package ownidsessions

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// embeddedContract is the OwnID session contract, served by default.
//
//go:embed openapi/sessions.yaml
var embeddedContract []byte

// The path templates of the contract, below the app prefix.
const (
	collectionPath = "/accounts/sessions"
	itemPath       = "/accounts/sessions/{sessionId}"
)

// contract is a parsed OpenAPI document with its validator and what the
// handler needs to know of it per path: the declared methods and whether an
// operation declares a request body.
type contract struct {
	validator validator.Validator
	// allow holds, per path template, the declared methods and the Allow
	// header that lists them.
	allow map[string]allowed
}

type allowed struct {
	methods []string
	header  string
	// bodies lists the methods whose operation declares a request body.
	bodies []string
}

// embedded is the embedded contract, parsed on first use: the document
// never changes, so configs and reloads share one validator, which is safe
// for concurrent use.
var embedded = sync.OnceValues(func() (*contract, error) {
	return parseContract(embeddedContract)
})

func loadContract() (*contract, error) { return embedded() }

func parseContract(spec []byte) (*contract, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("spec: %v", err)
	}
	v, errs := validator.NewValidator(doc,
		// The bearer token is verified before validation, with more care
		// than a presence check.
		config.WithoutSecurityValidation(),
	)
	if len(errs) > 0 {
		return nil, fmt.Errorf("spec: %v", errs[0])
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, fmt.Errorf("spec: %v", err)
	}
	c := &contract{validator: v, allow: map[string]allowed{}}
	for pair := model.Model.Paths.PathItems.First(); pair != nil; pair = pair.Next() {
		var a allowed
		for op := pair.Value().GetOperations().First(); op != nil; op = op.Next() {
			method := strings.ToUpper(op.Key())
			a.methods = append(a.methods, method)
			if op.Value().RequestBody != nil {
				a.bodies = append(a.bodies, method)
			}
		}
		slices.Sort(a.methods)
		a.header = strings.Join(a.methods, ", ")
		c.allow[pair.Key()] = a
	}
	for _, p := range []string{collectionPath, itemPath} {
		if _, ok := c.allow[p]; !ok {
			return nil, fmt.Errorf("spec: the document does not describe %s", p)
		}
	}
	return c, nil
}

// checkMethod answers 405 for a method the contract does not declare on the
// path, with the Allow header listing those it does.
func (c *contract) checkMethod(template, method string) *problem {
	a := c.allow[template]
	if slices.Contains(a.methods, method) {
		return nil
	}
	return newProblem(kindMethodNotAllowed, method+" is not declared on this path").
		withHeader("Allow", a.header)
}

// declaresBody says whether the operation has a request body.
func (c *contract) declaresBody(template, method string) bool {
	return slices.Contains(c.allow[template].bodies, method)
}

// checkMediaType answers 415 unless the request says its body is JSON
// (application/json or any application/*+json).
func checkMediaType(r *http.Request) *problem {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return newProblem(kindUnsupportedMediaType, "send the body as Content-Type: application/json")
}

// validateRequest checks the request against the contract: parameters and
// body. path is the request path below the app prefix, body the request body
// already read (nil when there is none). The request itself is not touched.
func (c *contract) validateRequest(r *http.Request, path string, body []byte) *problem {
	vr := new(http.Request)
	*vr = *r
	vr.URL = &url.URL{Path: path, RawQuery: r.URL.RawQuery}
	vr.Body = io.NopCloser(bytes.NewReader(body))
	vr.ContentLength = int64(len(body))
	ok, errs := c.validator.ValidateHttpRequestSync(vr)
	if ok {
		return nil
	}
	p := newProblem(kindInvalidRequest, "the request does not match the session contract")
	p.errors = fieldErrors(errs)
	return p
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
