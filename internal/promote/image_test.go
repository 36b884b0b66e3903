package promote

import "testing"

func TestWithTag(t *testing.T) {
	for in, want := range map[string]string{
		"ghcr.io/o/m:v1":                    "ghcr.io/o/m:v2",
		"registry:5000/o/m:v1":              "registry:5000/o/m:v2",
		"registry:5000/o/m":                 "registry:5000/o/m:v2",
		"ghcr.io/o/m=mirror.local/m:v1":     "ghcr.io/o/m=mirror.local/m:v2",
		"ghcr.io/o/m=ghcr.io/o/m:v1":        "ghcr.io/o/m=ghcr.io/o/m:v2",
		"ghcr.io/o/m@sha256:0123456789abcd": "ghcr.io/o/m:v2",
	} {
		if got := withTag(in, "v2"); got != want {
			t.Errorf("withTag(%q) = %q, want %q", in, got, want)
		}
	}
}
