package analysis

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"time"
)

// GoldenSet is the mlcd/golden-set plugin's configuration: File (JSONL in
// the app's Git checkout, one {"request": …, "expected": …} per line) is
// sent to URL (the canary's endpoint) line by line as a JSON POST; a reply
// (narrowed by JSONPath) matches when it equals expected, or, for numbers,
// is within Tolerance of it. Threshold is the share of lines that must
// match (default 1).
type GoldenSet struct {
	URL            string   `json:"url"`
	File           string   `json:"file"`
	Threshold      *float64 `json:"threshold,omitempty"`
	Tolerance      float64  `json:"tolerance,omitempty"`
	JSONPath       string   `json:"jsonPath,omitempty"`
	TimeoutSeconds int64    `json:"timeoutSeconds,omitempty"`
}

type goldenCase struct {
	Request  json.RawMessage `json:"request"`
	Expected any             `json:"expected"`
}

// goldenSet returns {matched, total, score} and, without conditions, the
// verdict score ≥ threshold.
func goldenSet(ctx context.Context, raw json.RawMessage, env Env) (any, string, error) {
	var cfg GoldenSet
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, "", fmt.Errorf("%s: %w", PluginGoldenSet, err)
	}
	if cfg.URL == "" || cfg.File == "" {
		return nil, "", fmt.Errorf("%s: url and file are required", PluginGoldenSet)
	}
	if env.ReadFile == nil {
		return nil, "", fmt.Errorf("%s: no Git checkout to read %s from", PluginGoldenSet, cfg.File)
	}
	data, err := env.ReadFile(cfg.File)
	if err != nil {
		return nil, "", fmt.Errorf("%s: read %s: %w", PluginGoldenSet, cfg.File, err)
	}
	var cases []goldenCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var c goldenCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, "", fmt.Errorf("%s: %s line %d: %w", PluginGoldenSet, cfg.File, line, err)
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		return nil, "", fmt.Errorf("%s: %s holds no cases", PluginGoldenSet, cfg.File)
	}
	timeout := 10 * time.Second
	if cfg.TimeoutSeconds > 0 {
		timeout = time.Duration(cfg.TimeoutSeconds) * time.Second
	}
	client := env.client(timeout, false)
	matched := 0
	for _, c := range cases {
		got, err := predict(ctx, client, cfg, c.Request, timeout)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", PluginGoldenSet, err)
		}
		if sameAnswer(got, c.Expected, cfg.Tolerance) {
			matched++
		}
	}
	threshold := 1.0
	if cfg.Threshold != nil {
		threshold = *cfg.Threshold
	}
	score := float64(matched) / float64(len(cases))
	verdict := Successful
	if score < threshold {
		verdict = Failed
	}
	return map[string]any{"matched": matched, "total": len(cases), "score": score}, verdict, nil
}

func predict(ctx context.Context, client *http.Client, cfg GoldenSet, body json.RawMessage, timeout time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	doc, err := getJSON(client, req)
	if err != nil {
		return nil, err
	}
	if cfg.JSONPath == "" {
		return doc, nil
	}
	jp, err := parseJSONPath(cfg.JSONPath)
	if err != nil {
		return nil, err
	}
	values, err := jsonPathValues(jp, doc)
	if err != nil || len(values) == 0 {
		return nil, nil // no prediction: does not match
	}
	return values[0], nil
}

// sameAnswer: equal, or both numbers within tolerance.
func sameAnswer(got, want any, tolerance float64) bool {
	g, gok := got.(float64)
	w, wok := want.(float64)
	if gok && wok {
		return math.Abs(g-w) <= tolerance
	}
	return reflect.DeepEqual(got, want)
}
