package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"k8s.io/apimachinery/pkg/watch"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// AppEvent is one server-sent event of the stream.
type AppEvent struct {
	Type        string                `json:"type"`
	Application *v1alpha1.Application `json:"application"`
}

// streamApps answers GET /api/v1/stream/applications with server-sent
// events, one per change of an Application the token may see.
func (s *Server) streamApps(w http.ResponseWriter, r *http.Request, who *Identity) (any, error) {
	if s.o.Watch == nil {
		return nil, &apiError{http.StatusNotImplemented, "this server has no watch"}
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		return nil, &apiError{http.StatusInternalServerError, "streaming unsupported"}
	}
	// Each token holds at most MaxStreamsPerToken streams: a stream holds
	// a watch on the API server, and a leaked token (or a page opened in
	// a loop) must not hold thousands.
	if !s.streams.acquire(who.Name) {
		return nil, &apiError{http.StatusTooManyRequests, fmt.Sprintf("token %s already holds %d live streams; close one", who.Name, MaxStreamsPerToken)}
	}
	defer s.streams.release(who.Name)
	// A stream has no request timeout (see handle).
	ctx := r.Context()
	wi, err := s.o.Watch(ctx)
	if err != nil {
		return nil, err
	}
	defer wi.Stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	for {
		select {
		case <-ctx.Done():
			return nil, nil
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return nil, nil
			}
			app, isApp := ev.Object.(*v1alpha1.Application)
			if !isApp || ev.Type == watch.Error || !s.served(app.Namespace) || !who.Sees(app.Spec.Project) {
				continue
			}
			scrub(app)
			data, _ := json.Marshal(AppEvent{Type: string(ev.Type), Application: app})
			fmt.Fprintf(w, "event: application\ndata: %s\n\n", data)
			flusher.Flush()
		}
	}
}

// MaxStreamsPerToken bounds the live streams one token holds at once.
const MaxStreamsPerToken = 16

// streamCounts counts the open streams per token name.
type streamCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *streamCounts) acquire(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[name] >= MaxStreamsPerToken {
		return false
	}
	c.n[name]++
	return true
}

func (c *streamCounts) release(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[name]--; c.n[name] <= 0 {
		delete(c.n, name)
	}
}
