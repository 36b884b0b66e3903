package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// MLflow error codes used by this package (mlflow/protos/databricks.proto).
const (
	CodeAlreadyExists   = "RESOURCE_ALREADY_EXISTS"
	CodeNotFound        = "RESOURCE_DOES_NOT_EXIST"
	CodeInvalidParam    = "INVALID_PARAMETER_VALUE"
	CodePermission      = "PERMISSION_DENIED"
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeEndpointUnknown = "ENDPOINT_NOT_FOUND"
	CodeInternal        = "INTERNAL_ERROR"
	CodeBadRequest      = "BAD_REQUEST"
)

// Sentinel errors: branch with errors.Is(err, registry.ErrNotFound).
var (
	ErrNotFound         = errors.New("not found")
	ErrAlreadyExists    = errors.New("already exists")
	ErrInvalidParameter = errors.New("invalid parameter")
	ErrPermissionDenied = errors.New("permission denied")
	ErrUnauthenticated  = errors.New("unauthenticated")
	// ErrDeleted is a model version that existed and was deleted (it is
	// also ErrNotFound).
	ErrDeleted = errors.New("deleted")
)

// deletedPhrase ends the not-found message of a deleted version.
const deletedPhrase = "was deleted"

// Error is an error answered by a registry server.
type Error struct {
	// Code is MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST.
	Code    string `json:"error_code"`
	Message string `json:"message"`
	// Status is the HTTP status of the answer.
	Status int `json:"-"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("registry: %s (HTTP %d)", e.Code, e.Status)
	}
	return fmt.Sprintf("registry: %s: %s", e.Code, e.Message)
}

// Is maps MLflow codes (and, for servers that answer without a body, HTTP
// statuses) onto the sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == CodeNotFound || e.Code == "" && e.Status == http.StatusNotFound
	case ErrDeleted:
		return e.Code == CodeNotFound && strings.HasSuffix(e.Message, deletedPhrase)
	case ErrAlreadyExists:
		return e.Code == CodeAlreadyExists
	case ErrInvalidParameter:
		return e.Code == CodeInvalidParam || e.Code == CodeBadRequest
	case ErrPermissionDenied:
		return e.Code == CodePermission || e.Code == "" && e.Status == http.StatusForbidden
	case ErrUnauthenticated:
		return e.Code == CodeUnauthenticated || e.Code == "" && e.Status == http.StatusUnauthorized
	}
	return false
}

// statusOf is the HTTP status MLflow's server answers for a code.
func statusOf(code string) int {
	switch code {
	case CodeNotFound, CodeEndpointUnknown:
		return http.StatusNotFound
	case CodePermission:
		return http.StatusForbidden
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeInternal:
		return http.StatusInternalServerError
	default: // RESOURCE_ALREADY_EXISTS and INVALID_PARAMETER_VALUE are 400 in MLflow
		return http.StatusBadRequest
	}
}

func apiErr(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: statusOf(code)}
}
