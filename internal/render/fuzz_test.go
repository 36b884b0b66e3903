package render

import (
	"strings"
	"testing"
)

// FuzzParseImage: Argo CD's image override forms parse without panics
// into a name and at most one of tag or digest.
func FuzzParseImage(f *testing.F) {
	for _, s := range []string{"nginx=registry.example.com/nginx:1.25", "nginx:1.25", "nginx@sha256:abc", "a=b@sha256:c", "=", "@", ":", "a:b:c", "reg:5000/img:tag", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		img := ParseImage(s)
		if _, hasTag := img["newTag"]; hasTag {
			if _, hasDigest := img["digest"]; hasDigest {
				t.Fatalf("ParseImage(%q) = %v: both a tag and a digest", s, img)
			}
		}
		if name, _ := img["name"].(string); strings.Contains(name, "=") {
			t.Fatalf("ParseImage(%q) = %v: name holds =", s, img)
		}
	})
}
