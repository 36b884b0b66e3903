package cli

import (
	"errors"

	"github.com/mlcd-dev/mlcd/internal/registry"
)

func isNotFound(err error) bool      { return errors.Is(err, registry.ErrNotFound) }
func isAlreadyExists(err error) bool { return errors.Is(err, registry.ErrAlreadyExists) }
