package registry

import (
	"context"
	"strconv"
)

const (
	maxModelSearch   = 1000
	defModelSearch   = 100
	maxVersionSearch = 200000
	defVersionSearch = 10000
	defHistory       = 25000
)

func (s *Server) registryRoutes() map[string]handler {
	return map[string]handler{
		"POST registered-models/create":              s.createModel,
		"GET registered-models/get":                  s.getModel,
		"GET registered-models/search":               s.searchModels,
		"PATCH registered-models/update":             s.updateModel,
		"POST registered-models/rename":              s.renameModel,
		"DELETE registered-models/delete":            s.deleteModel,
		"POST registered-models/set-tag":             s.setModelTag,
		"DELETE registered-models/delete-tag":        s.deleteModelTag,
		"POST registered-models/get-latest-versions": s.latestVersions,
		"GET registered-models/get-latest-versions":  s.latestVersions,
		"POST registered-models/alias":               s.setAlias,
		"DELETE registered-models/alias":             s.deleteAlias,
		"GET registered-models/alias":                s.getAlias,
		"POST model-versions/create":                 s.createVersion,
		"GET model-versions/get":                     s.getVersion,
		"GET model-versions/search":                  s.searchVersions,
		"PATCH model-versions/update":                s.updateVersion,
		"DELETE model-versions/delete":               s.deleteVersion,
		"POST model-versions/set-tag":                s.setVersionTag,
		"DELETE model-versions/delete-tag":           s.deleteVersionTag,
		"POST model-versions/transition-stage":       s.transitionStage,
		"GET model-versions/get-download-uri":        s.downloadURI,
		"POST experiments/create":                    s.createExperiment,
		"GET experiments/get-by-name":                s.getExperimentByName,
		"GET experiments/get":                        s.getExperiment,
		"POST runs/create":                           s.createRun,
		"POST runs/update":                           s.updateRun,
		"GET runs/get":                               s.getRun,
		"POST runs/log-metric":                       s.logMetric,
		"POST runs/log-batch":                        s.logBatch,
		"POST runs/log-parameter":                    s.logParam,
		"POST runs/set-tag":                          s.setRunTag,
		"GET metrics/get-history":                    s.metricHistory,
		"POST webhooks":                              s.createWebhook,
		"GET webhooks":                               s.listWebhooks,
		"GET webhooks/{id}":                          s.getWebhook,
		"DELETE webhooks/{id}":                       s.deleteWebhook,
	}
}

func (s *Server) ms() int64 { return s.now().UnixMilli() }

func parseVersion(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, apiErr(CodeInvalidParam, "Parameter 'version' must be an integer, got '%s'.", v)
	}
	return n, nil
}

func pageSize(req, def, max int) (int, error) {
	switch {
	case req == 0:
		return def, nil
	case req < 0 || req > max:
		return 0, apiErr(CodeInvalidParam, "Invalid value for max_results. It must be at most %d, but got value %d", max, req)
	}
	return req, nil
}

// pagedSearch is a search route: it decodes MLflow's filter, max_results,
// order_by and page_token, runs search, and answers the page under key
// with a next_page_token while more remain. refresh, if set, updates the
// found items before they are answered.
func pagedSearch[T any](r *request, key string, def, max int,
	search func(ctx context.Context, filter string, orderBy []string, max, offset int) ([]T, bool, error),
	refresh func(context.Context, []T)) (any, error) {
	var in struct {
		Filter     string   `json:"filter"`
		MaxResults int      `json:"max_results"`
		OrderBy    []string `json:"order_by"`
		PageToken  string   `json:"page_token"`
	}
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	size, err := pageSize(in.MaxResults, def, max)
	if err != nil {
		return nil, err
	}
	offset, err := decodePageToken(in.PageToken)
	if err != nil {
		return nil, err
	}
	items, more, err := search(r.Context(), in.Filter, in.OrderBy, size, offset)
	if err != nil {
		return nil, err
	}
	if refresh != nil {
		refresh(r.Context(), items)
	}
	out := map[string]any{}
	if len(items) > 0 {
		out[key] = items
	}
	if more {
		out["next_page_token"] = encodePageToken(offset + size)
	}
	return out, nil
}
