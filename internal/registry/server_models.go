package registry

import (
	"strconv"
	"strings"
)

// Handlers of registered-models/*.

type nameReq struct {
	Name string `json:"name" required:"true"`
}

func (s *Server) createModel(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Tags        []Tag  `json:"tags"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.createModel(r.Context(), in.Name, in.Description, r.user, in.Tags, s.ms())
	if err != nil {
		return nil, err
	}
	return modelReply{RegisteredModel: m}, nil
}

func (s *Server) getModel(r *request) (any, error) {
	var in nameReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.getModel(r.Context(), s.store.db, in.Name)
	if err != nil {
		return nil, err
	}
	s.refreshAll(r.Context(), m.LatestVersions)
	return modelReply{RegisteredModel: m}, nil
}

func (s *Server) searchModels(r *request) (any, error) {
	return pagedSearch(r, "registered_models", defModelSearch, maxModelSearch, s.store.searchModels, nil)
}

func (s *Server) updateModel(r *request) (any, error) {
	var in struct {
		Name        string `json:"name" required:"true"`
		Description string `json:"description"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.updateModel(r.Context(), in.Name, in.Description, s.ms())
	if err != nil {
		return nil, err
	}
	return modelReply{RegisteredModel: m}, nil
}

func (s *Server) renameModel(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		NewName string `json:"new_name" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.store.renameModel(r.Context(), in.Name, in.NewName, s.ms())
	if err != nil {
		return nil, err
	}
	return modelReply{RegisteredModel: m}, nil
}

func (s *Server) deleteModel(r *request) (any, error) {
	var in nameReq
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.deleteModel(r.Context(), in.Name)
}

func (s *Server) setModelTag(r *request) (any, error) {
	var in struct {
		Name  string `json:"name" required:"true"`
		Key   string `json:"key" required:"true"`
		Value string `json:"value"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.setModelTag(r.Context(), in.Name, in.Key, in.Value)
}

func (s *Server) deleteModelTag(r *request) (any, error) {
	var in struct {
		Name string `json:"name" required:"true"`
		Key  string `json:"key" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.deleteModelTag(r.Context(), in.Name, in.Key)
}

func (s *Server) latestVersions(r *request) (any, error) {
	var in struct {
		Name   string   `json:"name" required:"true"`
		Stages []string `json:"stages"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	for _, st := range in.Stages {
		if canonicalStage(st) == "" {
			return nil, apiErr(CodeInvalidParam, "Invalid Model Version stage: %s. Value must be one of None, Staging, Production, Archived.", st)
		}
	}
	if err := modelExists(r.Context(), s.store.db, in.Name); err != nil {
		return nil, err
	}
	vs, err := s.store.latestVersions(r.Context(), s.store.db, in.Name, in.Stages)
	if err != nil {
		return nil, err
	}
	s.refreshAll(r.Context(), vs)
	if len(vs) == 0 {
		return nil, nil
	}
	return versionsReply{ModelVersions: vs}, nil
}

func (s *Server) setAlias(r *request) (any, error) {
	var in struct {
		Name    string `json:"name" required:"true"`
		Alias   string `json:"alias" required:"true"`
		Version string `json:"version" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if err := validAlias(in.Alias); err != nil {
		return nil, err
	}
	v, err := parseVersion(in.Version)
	if err != nil {
		return nil, err
	}
	return nil, s.store.setAlias(r.Context(), in.Name, in.Alias, v)
}

// validAlias follows MLflow: no "latest", no version-like "v<N>" names.
func validAlias(a string) error {
	lower := strings.ToLower(a)
	if lower == "latest" {
		return apiErr(CodeInvalidParam, "'%s' alias name (case insensitive) is reserved.", a)
	}
	if len(lower) > 1 && lower[0] == 'v' {
		if _, err := strconv.Atoi(lower[1:]); err == nil {
			return apiErr(CodeInvalidParam, "Version alias name '%s' is reserved.", a)
		}
	}
	if len(a) > 255 {
		return apiErr(CodeInvalidParam, "Alias name exceeds the maximum length of 255 characters.")
	}
	return nil
}

func (s *Server) deleteAlias(r *request) (any, error) {
	var in struct {
		Name  string `json:"name" required:"true"`
		Alias string `json:"alias" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	return nil, s.store.deleteAlias(r.Context(), in.Name, in.Alias)
}

func (s *Server) getAlias(r *request) (any, error) {
	var in struct {
		Name  string `json:"name" required:"true"`
		Alias string `json:"alias" required:"true"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	v, err := s.store.getAlias(r.Context(), in.Name, in.Alias)
	if err != nil {
		return nil, err
	}
	s.refresh(r.Context(), v)
	return versionReply{ModelVersion: v}, nil
}
