package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors callers can act on with errors.Is.
var (
	// ErrUnauthorized: the registry wants (other) credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrDenied: the credentials are valid but not allowed to do this.
	ErrDenied = errors.New("denied")
	// ErrNotFound: no such repository, tag, manifest or blob.
	ErrNotFound = errors.New("not found")
	// ErrNoPlatform: an index has no image for the requested platform.
	ErrNoPlatform = errors.New("no matching platform")
)

// Error is a registry's answer turned into one readable line, keeping the
// protocol error (a *transport.Error) for errors.As.
type Error struct {
	kind  error  // one of the sentinels, or nil
	msg   string // "unauthorized: authentication required"
	cause error
}

func (e *Error) Error() string { return e.msg }

// Is matches the sentinel this error is an instance of.
func (e *Error) Is(target error) bool { return e.kind != nil && target == e.kind }

func (e *Error) Unwrap() error { return e.cause }

// explain rewrites a go-containerregistry protocol error as one line without
// the request URL: "unauthorized: authentication required". Other errors
// pass through.
func explain(err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if !errors.As(err, &te) {
		return err
	}
	var kind error
	switch te.StatusCode {
	case http.StatusUnauthorized:
		kind = ErrUnauthorized
	case http.StatusForbidden:
		kind = ErrDenied
	case http.StatusNotFound:
		kind = ErrNotFound
	}
	var parts []string
	for _, d := range te.Errors {
		code := strings.ToLower(strings.ReplaceAll(string(d.Code), "_", " "))
		switch d.Code {
		case transport.UnauthorizedErrorCode:
			kind = ErrUnauthorized
		case transport.DeniedErrorCode:
			kind = ErrDenied
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			kind = ErrNotFound
		}
		if d.Message != "" {
			parts = append(parts, code+": "+d.Message)
		} else {
			parts = append(parts, code)
		}
	}
	msg := strings.Join(parts, "; ")
	if msg == "" {
		switch kind {
		case ErrUnauthorized:
			msg = "unauthorized: authentication required"
		case ErrDenied:
			msg = "denied: requested access to the resource is denied"
		case ErrNotFound:
			msg = "not found"
		default:
			msg = fmt.Sprintf("registry answered %d %s", te.StatusCode, http.StatusText(te.StatusCode))
		}
	}
	return &Error{kind: kind, msg: msg, cause: err}
}

// wrap prefixes an operation ("pull busybox") to an explained error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, explain(err))
}
