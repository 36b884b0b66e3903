package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// VersionTag is the version tag that carries the version string written in
// Git (e.g. "v2.3.2").
const VersionTag = "version"

// ErrAmbiguous is returned when several versions carry the same version tag.
var ErrAmbiguous = errors.New("ambiguous version tag")

// VersionSearcher is what Resolve needs of a registry client.
type VersionSearcher interface {
	GetModelVersion(ctx context.Context, name, version string) (*ModelVersion, error)
	AllModelVersions(ctx context.Context, o SearchOptions) ([]ModelVersion, error)
}

// Resolve finds the registry version that a version string from Git names:
// a bare integer ("3") is MLflow's version number; anything else ("v2.3.2")
// names the version whose tag "version" equals it. More than one version
// carrying the same tag is an error, not a guess. The error matches
// ErrNotFound when no version is named.
func Resolve(ctx context.Context, c VersionSearcher, model, ref string) (*ModelVersion, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, fmt.Errorf("model %s: empty version", model)
	}
	if n, err := strconv.ParseInt(ref, 10, 64); err == nil && n > 0 {
		v, err := c.GetModelVersion(ctx, model, ref)
		if errors.Is(err, ErrDeleted) {
			return nil, fmt.Errorf("model %s version %s was deleted from the registry and cannot be deployed: %w", model, ref, err)
		}
		if err != nil {
			return nil, fmt.Errorf("model %s version %s: %w", model, ref, err)
		}
		return v, nil
	}
	if strings.ContainsAny(ref, "'\\") || strings.ContainsAny(model, "'\\") {
		return nil, fmt.Errorf("model %s version %q: quotes are not allowed: %w", model, ref, ErrInvalidParameter)
	}
	filter := fmt.Sprintf("name = '%s' AND tags.%s = '%s'", model, VersionTag, ref)
	found, err := c.AllModelVersions(ctx, SearchOptions{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("model %s version %s: %w", model, ref, err)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("model %s has no version tagged %s=%s: %w", model, VersionTag, ref, ErrNotFound)
	case 1:
		return &found[0], nil
	default:
		nums := make([]string, len(found))
		for i, v := range found {
			nums[i] = v.Version
		}
		return nil, fmt.Errorf("model %s: versions %s are all tagged %s=%s; tag exactly one: %w", model, strings.Join(nums, ", "), VersionTag, ref, ErrAmbiguous)
	}
}
