package main

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// What the benchmark counts: API requests by kind and the process's CPU
// and memory.

// counting counts API requests, and writes among them (neither reads nor
// dry runs).
type counting struct {
	next     http.RoundTripper
	requests atomic.Int64
	writes   atomic.Int64
	mu       sync.Mutex
	byKind   map[string]int // "PATCH configmaps dryRun" → count
	// took: the time to the response's headers, summed by kind (for the
	// mean latency the breakdown shows).
	took map[string]time.Duration
}

func (w *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	w.requests.Add(1)
	kind := requestKind(r)
	if r.Method != http.MethodGet && !strings.Contains(r.URL.RawQuery, "dryRun=All") {
		w.writes.Add(1)
	}
	began := time.Now()
	resp, err := w.next.RoundTrip(r)
	took := time.Since(began)
	w.mu.Lock()
	if w.byKind == nil {
		w.byKind, w.took = map[string]int{}, map[string]time.Duration{}
	}
	w.byKind[kind]++
	w.took[kind] += took
	w.mu.Unlock()
	return resp, err
}

// requestKind is a request's verb, resource and watch/dry-run marks,
// for the breakdown of requests per app: /api/v1/[namespaces/NS/]RESOURCE…
// or /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE….
func requestKind(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) > 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) > 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		parts = nil // discovery
	}
	if len(parts) > 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	resource := "discovery"
	if len(parts) > 0 {
		resource = parts[0]
	}
	k := r.Method + " " + resource
	if r.URL.Query().Get("watch") == "true" {
		k += " watch"
	}
	if r.URL.Query().Get("dryRun") == "All" {
		k += " dryRun"
	}
	return k
}

// breakdown is the requests per app by kind, most first, each with its
// mean latency (to the response's headers; watches left out).
func (w *counting) breakdown(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range w.byKind {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var b strings.Builder
	for _, e := range all {
		if float64(e.v)/float64(n) < 0.05 {
			continue
		}
		fmt.Fprintf(&b, "%s %.2f", e.k, float64(e.v)/float64(n))
		if !strings.HasSuffix(e.k, " watch") {
			fmt.Fprintf(&b, " (%.0f ms)", float64(w.took[e.k].Milliseconds())/float64(e.v))
		}
		b.WriteString("; ")
	}
	return b.String()
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
