package registry

import (
	"context"
	"io/fs"
	"strconv"
	"strings"
)

// Handlers of model-versions/*.

func (s *Server) createVersion(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Source      string `json:"source" required:"true"`
		RunID       string `json:"run_id"`
		Tags        []Tag  `json:"tags"`
		RunLink     string `json:"run_link"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if strings.Contains(in.Source, "..") {
		return nil, apiErr(CodeInvalidParam, "Invalid model version source: '%s'. Source paths cannot contain '..'.", in.Source)
	}
	if in.RunID != "" {
		if _, err := s.store.runInfo(r.Context(), s.store.db, in.RunID); err != nil {
			return nil, err
		}
	}
	status := StatusReady
	if !s.sourcePresent(in.Source) {
		status = StatusPending
	}
	v, err := s.store.createVersion(r.Context(), newVersion{
		name: in.Name, source: in.Source, runID: in.RunID, runLink: in.RunLink,
		desc: in.Description, user: r.user, status: status, tags: in.Tags,
	}, s.ms())
	if err != nil {
		return nil, err
	}
	return versionReply{ModelVersion: v}, nil
}

// sourcePresent reports whether a version's artifacts are in place. Only
// sources served by this server's artifact proxy can be missing: such a
// version stays PENDING_REGISTRATION until its files are uploaded, then
// turns READY. Any other source is READY at once, as in MLflow.
func (s *Server) sourcePresent(source string) bool {
	rest, ok := strings.CutPrefix(source, "mlflow-artifacts:")
	if !ok {
		return true
	}
	rest = strings.TrimLeft(rest, "/")
	if rest == "" {
		return true
	}
	_, err := fs.Stat(s.artifacts.FS(), rest)
	return err == nil
}

// refresh moves a pending version to READY once its artifacts exist.
func (s *Server) refresh(ctx context.Context, v *ModelVersion) {
	if v.Status != StatusPending || !s.sourcePresent(v.Source) {
		return
	}
	n, _ := strconv.ParseInt(v.Version, 10, 64)
	if err := s.store.setVersionStatus(ctx, v.Name, n, StatusReady, s.ms()); err == nil {
		v.Status = StatusReady
	}
}

func (s *Server) refreshAll(ctx context.Context, vs []ModelVersion) {
	for i := range vs {
		s.refresh(ctx, &vs[i])
	}
}

type versionReq struct {
	Name    string `json:"name" required:"true"`
	Version string `json:"version" required:"true"`
}

func (s *Server) getVersion(r *request) (any, error) {
	var in versionReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	v, err := s.store.getVersion(r.Context(), s.store.db, in.Name, n)
	if err != nil {
		return nil, err
	}
	s.refresh(r.Context(), v)
	return versionReply{ModelVersion: v}, nil
}

func (s *Server) searchVersions(r *request) (any, error) {
	return pagedSearch(r, "model_versions", defVersionSearch, maxVersionSearch, s.store.searchVersions, s.refreshAll)
}

func (s *Server) updateVersion(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Version     string `json:"version" required:"true"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	v, err := s.store.updateVersion(r.Context(), in.Name, n, in.Description, s.ms())
	if err != nil {
		return nil, err
	}
	return versionReply{ModelVersion: v}, nil
}

func (s *Server) deleteVersion(r *request) (any, error) {
	var in versionReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.deleteVersion(r.Context(), in.Name, n)
}

func (s *Server) setVersionTag(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Version string `json:"version" required:"true"`
		Key     string `json:"key" required:"true"`
		Value   string `json:"value"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.setVersionTag(r.Context(), in.Name, n, in.Key, in.Value)
}

func (s *Server) deleteVersionTag(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Version string `json:"version" required:"true"`
		Key     string `json:"key" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.deleteVersionTag(r.Context(), in.Name, n, in.Key)
}

func (s *Server) transitionStage(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Version string `json:"version" required:"true"`
		Stage   string `json:"stage" required:"true"`
		Archive bool   `json:"archive_existing_versions"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	stage := canonicalStage(in.Stage)
	if stage == "" {
		return nil, apiErr(CodeInvalidParam, "Invalid Model Version stage: %s. Value must be one of None, Staging, Production, Archived.", in.Stage)
	}
	v, err := s.store.transitionStage(r.Context(), in.Name, n, stage, in.Archive, s.ms())
	if err != nil {
		return nil, err
	}
	return versionReply{ModelVersion: v}, nil
}

func (s *Server) downloadURI(r *request) (any, error) {
	var in versionReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	n, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	v, err := s.store.getVersion(r.Context(), s.store.db, in.Name, n)
	if err != nil {
		return nil, err
	}
	uri := v.Source
	if rest, ok := strings.CutPrefix(v.Source, "runs:/"); ok {
		runID, path, _ := strings.Cut(rest, "/")
		if info, err := s.store.runInfo(r.Context(), s.store.db, runID); err == nil {
			uri = strings.TrimRight(info.ArtifactURI, "/") + "/" + path
		}
	}
	return downloadURIReply{ArtifactURI: uri}, nil
}
