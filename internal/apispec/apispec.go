// Package apispec is the API's contract, docs/openapi.yaml, for the tests:
// the document, loaded and validated once per test binary, and an HTTP
// transport that checks every exchange of a test's client against it
// (Spec.Transport). It is imported only by tests.
package apispec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

// DocumentPath is the OpenAPI document, relative to the module's root.
const DocumentPath = "docs/openapi.yaml"

// Spec is the loaded, validated document.
type Spec struct {
	// Doc is the document; it must not be changed.
	Doc *openapi3.T
	// Path is the document's file.
	Path string
}

// StrictOptions are the validation options the document must pass: every
// example and default valid against its schema, every pattern a valid
// regular expression, no format the validator does not know, no extension
// beside a $ref, and every error reported rather than the first.
func StrictOptions() []openapi3.ValidationOption {
	return []openapi3.ValidationOption{
		openapi3.EnableMultiError(),
		openapi3.EnableExamplesValidation(),
		openapi3.EnableSchemaDefaultsValidation(),
		openapi3.EnableSchemaPatternValidation(),
		openapi3.EnableSchemaFormatValidation(),
		openapi3.ProhibitExtensionsWithRef(),
	}
}

var (
	loadOnce sync.Once
	loaded   *Spec
	loadErr  error
)

// Load returns the document, loaded and validated with StrictOptions the
// first time it is called in the process.
func Load() (*Spec, error) {
	loadOnce.Do(func() { loaded, loadErr = load() })
	return loaded, loadErr
}

func load() (*Spec, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(root, DocumentPath)
	loader := openapi3.NewLoader()
	loader.IncludeOrigin = true // errors name lines
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if err := doc.Validate(loader.Context, StrictOptions()...); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", path, err)
	}
	return &Spec{Doc: doc, Path: path}, nil
}

// moduleRoot is the nearest directory holding go.mod, from the working
// directory up (a test runs in its package's directory).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("apispec: no go.mod above the working directory")
		}
		dir = parent
	}
}
