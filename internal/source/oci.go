package source

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"helm.sh/helm/v4/pkg/registry"

	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// IsOCI reports whether a chart repository URL names an OCI registry:
// `oci://host/path`, or — as Argo CD writes OCI Helm repositories — a URL
// without a scheme (`registry.example.com/charts`).
func IsOCI(repoURL string) bool {
	return strings.HasPrefix(repoURL, "oci://") || !strings.Contains(repoURL, "://")
}

// ociRef is host/path/chart for a repository URL and chart name.
func ociRef(repoURL, chart string) string {
	return strings.TrimSuffix(strings.TrimPrefix(repoURL, "oci://"), "/") + "/" + chart
}

// ociClient is Helm's registry client for repoURL: the repository
// Secret's username and password, never the user's Docker or Helm
// credential files; plain HTTP only to a loopback registry (as Docker
// treats localhost).
func (c *Charts) ociClient(repoURL string, creds Credentials) (*registry.Client, error) {
	opts := []registry.ClientOption{
		registry.ClientOptWriter(io.Discard),
		registry.ClientOptCredentialsFile(filepath.Join(c.dir, "oci-credentials-unused.json")),
		registry.ClientOptHTTPClient(c.client),
	}
	if creds.Username != "" || creds.Password != "" {
		opts = append(opts, registry.ClientOptBasicAuth(creds.Username, creds.Password))
	}
	if u, err := url.Parse("oci://" + strings.TrimPrefix(repoURL, "oci://")); err == nil {
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			opts = append(opts, registry.ClientOptPlainHTTP())
		}
	}
	return registry.NewClient(opts...)
}

// resolveOCI picks a version from the registry's tags as Helm does for an
// index (exact match, else the highest the range allows).
func (c *Charts) resolveOCI(repoURL, chart, constraint string, creds Credentials) (string, error) {
	rc, err := c.ociClient(repoURL, creds)
	if err != nil {
		return "", err
	}
	tags, err := rc.Tags(ociRef(repoURL, chart))
	if err != nil {
		if notFound(err) {
			return "", fmt.Errorf("%w: %s %s in %s", ErrChartNotFound, chart, constraint, redactURL(repoURL))
		}
		return "", fmt.Errorf("OCI registry %s is unreachable: %s", redactURL(repoURL), manifest.OneLine(err))
	}
	idx := &chartIndexFile{Entries: map[string][]chartVersion{}}
	for _, t := range tags {
		idx.Entries[chart] = append(idx.Entries[chart], chartVersion{Version: t})
	}
	cv, err := idx.get(chart, constraint)
	if err != nil {
		return "", fmt.Errorf("%w: %s %s in %s: %s", ErrChartNotFound, chart, constraint, redactURL(repoURL), err)
	}
	return cv.Version, nil
}

// fetchOCI pulls chart:version (ORAS checks every blob's digest) and
// expands it once.
func (c *Charts) fetchOCI(repoURL, chart, version string, creds Credentials) (string, error) {
	key := sha256.Sum256([]byte(repoURL + "\x00" + chart + "\x00" + version))
	return c.expandOnce(filepath.Join(c.dir, chart+"-"+version+"-oci-"+hex.EncodeToString(key[:6])), chart, version, func() ([]byte, error) {
		rc, err := c.ociClient(repoURL, creds)
		if err != nil {
			return nil, err
		}
		res, err := rc.Pull(ociRef(repoURL, chart)+":"+strings.ReplaceAll(version, "+", "_"), registry.PullOptWithChart(true))
		if err != nil {
			if notFound(err) {
				return nil, fmt.Errorf("%w: %s %s in %s", ErrChartNotFound, chart, version, redactURL(repoURL))
			}
			return nil, fmt.Errorf("pull chart %s %s from %s: %s", chart, version, redactURL(repoURL), manifest.OneLine(err))
		}
		return res.Chart.Data, nil
	})
}

// notFound reports a registry's 404 (no such repository or tag).
func notFound(err error) bool {
	var er *errcode.ErrorResponse
	return errors.Is(err, errdef.ErrNotFound) || (errors.As(err, &er) && er.StatusCode == http.StatusNotFound)
}
