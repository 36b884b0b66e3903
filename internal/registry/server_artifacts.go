package registry

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
)

// serveArtifacts is MLflow's artifact proxy on the local filesystem:
// PUT and GET /api/2.0/mlflow-artifacts/artifacts/<path>, DELETE of a file,
// and GET /api/2.0/mlflow-artifacts/artifacts?path=<dir> to list. Every path
// is confined to the artifacts dir by os.Root, which also refuses symlinks
// that lead out of it.
func (s *Server) serveArtifacts(w http.ResponseWriter, r *http.Request, rel string) {
	if rel == "" && r.Method == http.MethodGet {
		s.listArtifacts(w, r, r.URL.Query().Get("path"))
		return
	}
	clean, err := artifactPath(rel)
	if err != nil {
		writeError(w, err)
		return
	}
	switch r.Method {
	case http.MethodPut:
		if dir := path.Dir(clean); dir != "." {
			if err := s.artifacts.MkdirAll(dir, 0o755); err != nil {
				writeError(w, apiErr(CodeInvalidParam, "cannot create artifact directory %s", dir))
				return
			}
		}
		f, err := s.artifacts.Create(clean)
		if err != nil {
			writeError(w, apiErr(CodeInvalidParam, "cannot write artifact %s", clean))
			return
		}
		_, err = io.Copy(f, http.MaxBytesReader(w, r.Body, s.opts.MaxArtifactBytes))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = s.artifacts.Remove(clean)
			writeError(w, apiErr(CodeInvalidParam, "upload of %s failed: %v", clean, err))
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	case http.MethodGet:
		f, err := s.artifacts.Open(clean)
		if err != nil {
			writeError(w, apiErr(CodeNotFound, "artifact %s not found", clean))
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || st.IsDir() {
			writeError(w, apiErr(CodeInvalidParam, "artifact %s is a directory", clean))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, path.Base(clean), st.ModTime(), f)
	case http.MethodDelete:
		if err := s.artifacts.RemoveAll(clean); err != nil {
			writeError(w, apiErr(CodeInvalidParam, "cannot delete artifact %s", clean))
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	default:
		writeError(w, apiErr(CodeEndpointUnknown, "No API endpoint found for %s %s", r.Method, r.URL.Path))
	}
}

// artifactPath refuses absolute paths and any ".." component.
func artifactPath(p string) (string, error) {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return "", apiErr(CodeInvalidParam, "invalid artifact path %q", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", apiErr(CodeInvalidParam, "invalid artifact path %q: '..' is not allowed", p)
		}
	}
	clean := path.Clean(p)
	if !fs.ValidPath(clean) {
		return "", apiErr(CodeInvalidParam, "invalid artifact path %q", p)
	}
	return clean, nil
}

func (s *Server) listArtifacts(w http.ResponseWriter, r *http.Request, dir string) {
	clean := "."
	if dir != "" {
		var err error
		if clean, err = artifactPath(dir); err != nil {
			writeError(w, err)
			return
		}
	}
	entries, err := fs.ReadDir(s.artifacts.FS(), clean)
	if errors.Is(err, fs.ErrNotExist) {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	if err != nil {
		writeError(w, apiErr(CodeInvalidParam, "cannot list %s", clean))
		return
	}
	files := make([]FileInfo, 0, len(entries))
	for _, e := range entries {
		fi := FileInfo{Path: path.Join(dir, e.Name()), IsDir: e.IsDir()}
		if !e.IsDir() {
			if info, err := e.Info(); err == nil {
				fi.FileSize = info.Size()
			}
		}
		files = append(files, fi)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	writeJSON(w, http.StatusOK, filesReply{Files: files})
}
