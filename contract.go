package ownidsessions

import (
	_ "embed"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pb33f/jsonschema/v6"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	"github.com/pb33f/libopenapi-validator/helpers"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	highbase "github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// embeddedContract is the OwnID session contract, enforced by default.
//
//go:embed openapi/sessions.yaml
var embeddedContract []byte

// The path templates of the session contract, below the app prefix.
const (
	collectionPath = "/accounts/sessions"
	itemPath       = "/accounts/sessions/{sessionId}"
)

// contract is a parsed OpenAPI document with its validator, and the routing
// table the handler builds from it once: which requests it describes, the
// methods declared on each path, and which operations take a body.
type contract struct {
	validator validator.Validator
	// sessions says the document describes the session API's two paths;
	// such a document is routed by the app-prefix rule of the contract
	// (any prefix before /accounts/sessions), which is what serve mode
	// needs.
	sessions bool
	paths    map[string]*pathInfo
	// byPattern is for documents routed by their own servers and paths:
	// the paths, most specific first.
	byPattern []*pathInfo
	// bases are the servers' base paths ({var} matches one segment),
	// longest first; a document without servers has the one base "".
	bases []*regexp.Regexp
	// foldedBases are the same, whatever the case.
	foldedBases []*regexp.Regexp
	// baseTemplates are the base paths as the document writes them.
	baseTemplates []string
	// schemes are the document's security schemes, by name.
	schemes map[string]*v3.SecurityScheme
	// strictOptions are the validator's options for strict mode; version
	// is the document's OpenAPI version, as the validator wants it.
	strictOptions *config.ValidationOptions
	version       float32
}

type pathInfo struct {
	template string
	item     *v3.PathItem
	// pattern matches the template, one capture group per variable, named
	// in variables.
	pattern   *regexp.Regexp
	variables []string
	// folded matches the path whatever its case, to spot near misses.
	folded   *regexp.Regexp
	literals int // literal segments, for specificity
	methods  []string
	allow    string // the Allow header: the declared methods
	ops      map[string]*operation
}

// operation is what the request check needs of one operation, worked out
// once when the document loads.
type operation struct {
	// name labels the operation in metrics and logs: its operationId, or
	// "METHOD template".
	name string
	// checkParams is false when the library's parameter validators have
	// nothing to check: every parameter is either an optional one whose
	// schema is a bare string, which every value satisfies, or a path
	// parameter with a string schema, checked with pathChecks.
	checkParams bool
	// singleQuery are the query parameters declared with a schema that is
	// not an array: each may be given once.
	singleQuery []string
	// pathChecks are the path parameters with a string schema, compiled
	// once and checked against the value the route captured.
	pathChecks []paramCheck
	// bodySchema is the compiled JSON Schema of a JSON request body
	// (libopenapi-validator's compilation, request direction); nil when
	// the operation declares no JSON body, in which case the library's
	// body validator checks whatever is declared.
	bodySchema *jsonschema.Schema
	// bodyModel is the JSON request body's schema as the document states
	// it, for strict mode; bodyProperties are the top-level properties it
	// declares (through allOf, anyOf and oneOf too).
	bodyModel      *highbase.Schema
	bodyProperties []string
	// security is what the operation's security (or the document's) asks
	// of the token.
	security operationSecurity
	// params are the parameters declared on the path and the operation.
	params []*v3.Parameter
	// securityHeaders are the headers the document's security schemes use.
	securityHeaders []string
	// hasBody: the operation declares a request body, of bodyTypes;
	// bodyRequired: it is required.
	hasBody      bool
	bodyTypes    []string
	bodyRequired bool
	// responses are the declared answers by status ("200", "2XX",
	// "default"), for checking the next handler's answer in forward mode.
	responses map[string]*declaredResponse
}

// declaredResponse is the response the operation declares for status: by
// its code, its class (2XX) or the default.
func (op *operation) declaredResponse(status int) (*declaredResponse, bool) {
	code := strconv.Itoa(status)
	if d, ok := op.responses[code]; ok {
		return d, true
	}
	if d, ok := op.responses[code[:1]+"XX"]; ok {
		return d, true
	}
	d, ok := op.responses["default"]
	return d, ok
}

// declaredResponse is one declared answer: its media types and, for JSON,
// the compiled schema of its body (response direction).
type declaredResponse struct {
	mediaTypes []string
	jsonSchema *jsonschema.Schema
}

// embedded is the embedded contract, parsed on first use: the document never
// changes, so configs and reloads share one validator, which is safe for
// concurrent use.
var embedded = sync.OnceValues(func() (*contract, error) {
	return parseContract(embeddedContract)
})

// loadContract returns the embedded contract, or the user's document in
// file. Load errors name the file and give the parser's reason.
func loadContract(file string) (*contract, error) {
	if file == "" {
		return embedded()
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("spec: %v", err)
	}
	c, err := parseContract(data)
	if err != nil {
		return nil, fmt.Errorf("spec: %s: %v", file, err)
	}
	return c, nil
}

func parseContract(spec []byte) (*contract, error) {
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, err
	}
	if v := doc.GetSpecInfo().SpecFormat; !strings.HasPrefix(doc.GetVersion(), "3.") {
		return nil, fmt.Errorf("not an OpenAPI 3 document (format %q, version %q)", v, doc.GetVersion())
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		return nil, err
	}
	v := validator.NewValidatorFromV3Model(&model.Model,
		// The bearer token is verified before validation, with more care
		// than a presence check.
		config.WithoutSecurityValidation(),
		// Formats (date-time, email, uuid, …) are checked, not only types.
		config.WithFormatAssertions(),
		// Without a cache the path-parameter check compiles its regular
		// expressions again on every request.
		config.WithRegexCache(&sync.Map{}),
	)
	v.SetDocument(doc)
	version := helpers.VersionToFloat(model.Model.Version)
	c := &contract{validator: v, paths: map[string]*pathInfo{}, version: version,
		strictOptions: config.NewValidationOptions(
			config.WithStrictMode(),
			config.WithFormatAssertions(),
			// A session's payload is the client's own data.
			config.WithStrictIgnorePaths("$.body.payload", "$.body.payload.**"),
			config.WithStrictIgnoredHeadersExtra(strictIgnoredHeaders...),
		)}
	if model.Model.Paths == nil || model.Model.Paths.PathItems == nil || model.Model.Paths.PathItems.Len() == 0 {
		return nil, fmt.Errorf("the document describes no paths")
	}
	opts := config.NewValidationOptions(config.WithFormatAssertions())
	for pair := model.Model.Paths.PathItems.First(); pair != nil; pair = pair.Next() {
		info, err := newPathInfo(pair.Key(), pair.Value(), model.Model.Security, opts, version)
		if err != nil {
			return nil, err
		}
		c.paths[info.template] = info
		c.byPattern = append(c.byPattern, info)
	}
	slices.SortStableFunc(c.byPattern, func(a, b *pathInfo) int { return b.literals - a.literals })
	_, hasCollection := c.paths[collectionPath]
	_, hasItem := c.paths[itemPath]
	c.sessions = hasCollection && hasItem
	c.schemes = map[string]*v3.SecurityScheme{}
	if comp := model.Model.Components; comp != nil && comp.SecuritySchemes != nil {
		for pair := comp.SecuritySchemes.First(); pair != nil; pair = pair.Next() {
			c.schemes[pair.Key()] = pair.Value()
		}
	}
	c.baseTemplates, c.bases, err = serverBases(model.Model.Servers, "")
	if err != nil {
		return nil, err
	}
	_, c.foldedBases, _ = serverBases(model.Model.Servers, "(?i)")
	return c, nil
}

func newPathInfo(template string, item *v3.PathItem, security []*highbase.SecurityRequirement, opts *config.ValidationOptions, version float32) (*pathInfo, error) {
	info := &pathInfo{template: template, item: item, ops: map[string]*operation{}}
	pattern, literals, variables, err := templatePattern(template)
	if err != nil {
		return nil, fmt.Errorf("path %s: %v", template, err)
	}
	info.pattern = regexp.MustCompile("^" + pattern + "$")
	info.folded = regexp.MustCompile("(?i)^" + pattern + "$")
	info.literals = literals
	info.variables = variables
	for op := item.GetOperations().First(); op != nil; op = op.Next() {
		method := strings.ToUpper(op.Key())
		info.methods = append(info.methods, method)
		compiled := &operation{
			security:        compileSecurity(op.Value().Security, security),
			params:          append(slices.Clip(item.Parameters), op.Value().Parameters...),
			securityHeaders: []string{"Authorization"},
		}
		if compiled.pathChecks, compiled.checkParams, err = compileParams(compiled.params, variables, opts, version); err != nil {
			return nil, fmt.Errorf("%s %s: %v", method, template, err)
		}
		for _, p := range compiled.params {
			if p.In == "query" && (p.Schema == nil || !slices.Contains(p.Schema.Schema().Type, "array")) {
				compiled.singleQuery = append(compiled.singleQuery, p.Name)
			}
		}
		compiled.name = op.Value().OperationId
		if compiled.name == "" {
			compiled.name = method + " " + template
		}
		if rb := op.Value().RequestBody; rb != nil && rb.Content != nil {
			compiled.hasBody = true
			compiled.bodyRequired = rb.Required != nil && *rb.Required
			for mt := rb.Content.First(); mt != nil; mt = mt.Next() {
				compiled.bodyTypes = append(compiled.bodyTypes, strings.ToLower(mt.Key()))
			}
			if mt, ok := rb.Content.Get("application/json"); ok && mt != nil && mt.Schema != nil && rb.Content.Len() == 1 {
				c, err := schema_validation.CompileSchemaForValidation(mt.Schema.Schema(),
					schema_validation.SchemaValidationPurposeRequestBody, opts, version)
				if err != nil {
					return nil, fmt.Errorf("%s %s: request body schema: %v", method, template, err)
				}
				compiled.bodySchema = c.CompiledSchema
				compiled.bodyModel = mt.Schema.Schema()
				compiled.bodyProperties = declaredProperties(compiled.bodyModel, 0)
			}
		}
		if compiled.responses, err = compileResponses(op.Value().Responses, opts, version); err != nil {
			return nil, fmt.Errorf("%s %s: %v", method, template, err)
		}
		info.ops[method] = compiled
	}
	slices.Sort(info.methods)
	info.allow = strings.Join(info.methods, ", ")
	return info, nil
}

// declaredProperties lists the top-level properties a schema declares,
// through allOf, anyOf and oneOf.
func declaredProperties(s *highbase.Schema, depth int) []string {
	if s == nil || depth > 8 {
		return nil
	}
	var names []string
	if s.Properties != nil {
		for pair := s.Properties.First(); pair != nil; pair = pair.Next() {
			names = append(names, pair.Key())
		}
	}
	for _, list := range [][]*highbase.SchemaProxy{s.AllOf, s.AnyOf, s.OneOf} {
		for _, sub := range list {
			if sub != nil {
				names = append(names, declaredProperties(sub.Schema(), depth+1)...)
			}
		}
	}
	return names
}

// compileResponses works out each declared answer of an operation.
func compileResponses(responses *v3.Responses, opts *config.ValidationOptions, version float32) (map[string]*declaredResponse, error) {
	out := map[string]*declaredResponse{}
	if responses == nil {
		return out, nil
	}
	add := func(code string, resp *v3.Response) error {
		d := &declaredResponse{}
		if resp != nil && resp.Content != nil {
			for mt := resp.Content.First(); mt != nil; mt = mt.Next() {
				d.mediaTypes = append(d.mediaTypes, strings.ToLower(mt.Key()))
				if isJSONMediaType(mt.Key()) && mt.Value() != nil && mt.Value().Schema != nil && d.jsonSchema == nil {
					c, err := schema_validation.CompileSchemaForValidation(mt.Value().Schema.Schema(),
						schema_validation.SchemaValidationPurposeResponseBody, opts, version)
					if err != nil {
						return fmt.Errorf("response %s schema: %v", code, err)
					}
					d.jsonSchema = c.CompiledSchema
				}
			}
		}
		out[strings.ToUpper(code)] = d
		return nil
	}
	if responses.Codes != nil {
		for pair := responses.Codes.First(); pair != nil; pair = pair.Next() {
			if err := add(pair.Key(), pair.Value()); err != nil {
				return nil, err
			}
		}
	}
	if responses.Default != nil {
		if err := add("default", responses.Default); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// isJSONMediaType: application/json or application/*+json.
func isJSONMediaType(mt string) bool {
	mt, _, _ = strings.Cut(mt, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// paramCheck is one path parameter checked in-house: the index of its
// variable in the template and its compiled schema.
type paramCheck struct {
	name     string
	variable int
	schema   *jsonschema.Schema
}

// compileParams compiles the path parameters whose schema is a string
// (with any pattern, length, format or enum) for checking against the
// value the route captured, and says whether any other parameter needs
// the library's parameter validators: one whose schema is not a bare
// string, or that is required outside the path.
func compileParams(params []*v3.Parameter, variables []string, opts *config.ValidationOptions, version float32) ([]paramCheck, bool, error) {
	var checks []paramCheck
	needLibrary := false
	seen := map[string]bool{}
	// Operation parameters come last and override path-level ones.
	for i := len(params) - 1; i >= 0; i-- {
		p := params[i]
		if p == nil || seen[p.In+" "+p.Name] {
			continue
		}
		seen[p.In+" "+p.Name] = true
		var s *highbase.Schema
		if p.Schema != nil && (p.Content == nil || p.Content.Len() == 0) {
			s = p.Schema.Schema()
		}
		stringSchema := s != nil && len(s.Type) == 1 && s.Type[0] == "string" &&
			len(s.AllOf) == 0 && len(s.AnyOf) == 0 && len(s.OneOf) == 0 && s.Not == nil
		if p.In == "path" && stringSchema {
			variable := slices.Index(variables, p.Name)
			if variable < 0 {
				needLibrary = true
				continue
			}
			c, err := schema_validation.CompileSchemaForValidation(s, schema_validation.SchemaValidationPurposeRequestBody, opts, version)
			if err != nil {
				return nil, false, fmt.Errorf("parameter %s: %v", p.Name, err)
			}
			checks = append(checks, paramCheck{name: p.Name, variable: variable, schema: c.CompiledSchema})
			continue
		}
		required := p.Required != nil && *p.Required
		bare := stringSchema && s.Pattern == "" && s.Format == "" && s.MinLength == nil && s.MaxLength == nil &&
			len(s.Enum) == 0 && s.Const == nil
		if !bare || required {
			needLibrary = true
		}
	}
	return checks, needLibrary, nil
}
