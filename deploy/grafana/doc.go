// Package grafana holds mlcd's Grafana dashboard (mlcd.json), embedded so
// a test can check it against a real scrape.
package grafana

import _ "embed"

// Dashboard is the dashboard JSON.
//
//go:embed mlcd.json
var Dashboard []byte
