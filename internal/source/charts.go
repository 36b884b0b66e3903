package source

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/internal/manifest"
)

// chartIndexFile is a Helm repository's index.yaml (the fields mlcd
// reads).
type chartIndexFile struct {
	Entries map[string][]chartVersion `json:"entries"`
}

type chartVersion struct {
	Name    string   `json:"name"`
	Version string   `json:"version"`
	URLs    []string `json:"urls"`
	Digest  string   `json:"digest,omitempty"`
}

// get picks a version as Helm does: an exact match first, else the
// highest version the constraint allows (empty: the latest stable).
func (i *chartIndexFile) get(name, constraint string) (*chartVersion, error) {
	vs := i.Entries[name]
	if len(vs) == 0 {
		return nil, fmt.Errorf("no chart %s", name)
	}
	for k := range vs {
		if constraint != "" && vs[k].Version == constraint {
			return &vs[k], nil
		}
	}
	c, err := semver.NewConstraint(cmp.Or(constraint, "*"))
	if err != nil {
		return nil, fmt.Errorf("version %q: %s", constraint, err)
	}
	var best *chartVersion
	var bestV *semver.Version
	for k := range vs {
		v, err := semver.NewVersion(vs[k].Version)
		if err != nil || !c.Check(v) {
			continue
		}
		if best == nil || v.GreaterThan(bestV) {
			best, bestV = &vs[k], v
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no version of %s matches %q", name, constraint)
	}
	return best, nil
}

// Charts fetches charts from Helm repositories (Argo CD's `source.chart`
// with a repository's `index.yaml` over HTTP(S), or an OCI registry; see
// oci.go): the index is fetched at
// most once per MaxAge unless a refresh is asked for; a chart version is
// downloaded once, checked against the index's digest, and expanded into
// a directory keyed by name, version and digest.
type Charts struct {
	dir    string
	maxAge time.Duration
	client *http.Client

	mu      sync.Mutex
	indexes map[string]*chartIndex
	fetch   map[string]*sync.Mutex
}

type chartIndex struct {
	index     *chartIndexFile
	fetchedAt time.Time
}

// NewCharts caches charts under dir.
func NewCharts(dir string, maxAge time.Duration) *Charts {
	if maxAge <= 0 {
		maxAge = 3 * time.Minute
	}
	return &Charts{dir: dir, maxAge: maxAge, client: &http.Client{Timeout: time.Minute}, indexes: map[string]*chartIndex{}, fetch: map[string]*sync.Mutex{}}
}

// ErrChartNotFound is a chart or version the repository does not have.
var ErrChartNotFound = errors.New("chart not found")

// Resolve returns the version of chart that constraint (a version or a
// semver range; empty: the latest stable) names in the repository.
func (c *Charts) Resolve(ctx context.Context, repoURL, chart, constraint string, creds Credentials, refresh bool) (string, error) {
	if IsOCI(repoURL) {
		return c.resolveOCI(repoURL, chart, constraint, creds)
	}
	idx, err := c.index(ctx, repoURL, creds, refresh)
	if err != nil {
		return "", err
	}
	cv, err := idx.get(chart, constraint)
	if err != nil {
		return "", fmt.Errorf("%w: %s %s in %s: %s", ErrChartNotFound, chart, constraint, redactURL(repoURL), err)
	}
	return cv.Version, nil
}

func (c *Charts) index(ctx context.Context, repoURL string, creds Credentials, refresh bool) (*chartIndexFile, error) {
	c.mu.Lock()
	ci := c.indexes[repoURL]
	c.mu.Unlock()
	if ci != nil && !refresh && time.Since(ci.fetchedAt) < c.maxAge {
		return ci.index, nil
	}
	data, err := c.get(ctx, strings.TrimSuffix(repoURL, "/")+"/index.yaml", creds)
	if err != nil {
		return nil, fmt.Errorf("chart repository %s is unreachable: %s", redactURL(repoURL), err)
	}
	idx := &chartIndexFile{}
	if err := yaml.Unmarshal(data, idx); err != nil {
		return nil, fmt.Errorf("chart repository %s: invalid index.yaml: %s", redactURL(repoURL), manifest.OneLine(err))
	}
	c.mu.Lock()
	c.indexes[repoURL] = &chartIndex{index: idx, fetchedAt: time.Now()}
	c.mu.Unlock()
	return idx, nil
}

// Fetch returns the directory of chart at version (expanded once).
func (c *Charts) Fetch(ctx context.Context, repoURL, chart, version string, creds Credentials) (string, error) {
	if IsOCI(repoURL) {
		return c.fetchOCI(repoURL, chart, version, creds)
	}
	idx, err := c.index(ctx, repoURL, creds, false)
	if err != nil {
		return "", err
	}
	cv, err := idx.get(chart, version)
	if err != nil || cv.Version != version {
		if idx, err = c.index(ctx, repoURL, creds, true); err != nil {
			return "", err
		}
		if cv, err = idx.get(chart, version); err != nil || cv.Version != version {
			return "", fmt.Errorf("%w: %s %s in %s", ErrChartNotFound, chart, version, redactURL(repoURL))
		}
	}
	if len(cv.URLs) == 0 {
		return "", fmt.Errorf("chart %s %s in %s has no download URL", chart, version, redactURL(repoURL))
	}
	key := sha256.Sum256([]byte(repoURL + "\x00" + chart + "\x00" + version + "\x00" + cv.Digest))
	return c.expandOnce(filepath.Join(c.dir, chart+"-"+version+"-"+hex.EncodeToString(key[:6])), chart, version, func() ([]byte, error) {
		u, err := resolveReference(repoURL, cv.URLs[0])
		if err != nil {
			return nil, err
		}
		if !SameHost(u, repoURL) {
			// An index may point anywhere: the repository's credentials
			// go only to its own host (Argo CD's helm.passCredentials:
			// false).
			creds = Credentials{}
		}
		data, err := c.get(ctx, u, creds)
		if err != nil {
			return nil, fmt.Errorf("download chart %s %s: %s", chart, version, err)
		}
		if cv.Digest != "" {
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != cv.Digest {
				return nil, fmt.Errorf("chart %s %s from %s does not match the index's digest", chart, version, redactURL(repoURL))
			}
		}
		return data, nil
	})
}

// expandOnce returns dest/<chart>, downloading (download) and expanding
// the archive there the first time; concurrent callers share one.
func (c *Charts) expandOnce(dest, chart, version string, download func() ([]byte, error)) (string, error) {
	c.mu.Lock()
	lock := c.fetch[dest]
	if lock == nil {
		lock = &sync.Mutex{}
		c.fetch[dest] = lock
	}
	c.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	chartDir := filepath.Join(dest, chart)
	if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); err == nil {
		return chartDir, nil
	}
	data, err := download()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(c.dir, "expand-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "chart.tgz")
	if err := os.WriteFile(archive, data, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(tmp, "out")
	if err := chartutil.ExpandFile(out, archive); err != nil {
		return "", fmt.Errorf("expand chart %s %s: %s", chart, version, manifest.OneLine(err))
	}
	if _, err := os.Stat(filepath.Join(out, chart, "Chart.yaml")); err != nil {
		return "", fmt.Errorf("chart %s %s: the archive holds no %s/Chart.yaml", chart, version, chart)
	}
	_ = os.RemoveAll(dest)
	if err := os.Rename(out, dest); err != nil {
		return "", err
	}
	return chartDir, nil
}

func (c *Charts) get(ctx context.Context, u string, creds Credentials) ([]byte, error) {
	// User info in a URL is no host: "https://git.corp@evil/" is evil's.
	// A password written into the URL is the user's explicit credential
	// for that host; a bare user name is sent to nobody.
	if pu, err := url.Parse(u); err == nil && pu.User != nil {
		if pw, ok := pu.User.Password(); ok && creds.Username == "" && creds.Password == "" {
			creds = Credentials{Username: pu.User.Username(), Password: pw}
		}
		pu.User = nil
		u = pu.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if creds.Username != "" || creds.Password != "" {
		req.SetBasicAuth(creds.Username, creds.Password)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, errors.New(strings.ReplaceAll(manifest.OneLine(err), u, redactURL(u)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", redactURL(u), resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// resolveReference resolves a chart URL of the index against the
// repository URL (relative URLs are relative to the repository).
func resolveReference(repoURL, ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	if r.IsAbs() {
		return ref, nil
	}
	base, err := url.Parse(strings.TrimSuffix(repoURL, "/") + "/")
	if err != nil {
		return "", err
	}
	return base.ResolveReference(r).String(), nil
}
