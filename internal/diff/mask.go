package diff

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Masker hides a Secret's values in what people read (the API's diff,
// `mlcd diff`): every value of data and stringData becomes a fixed-length
// token, equal for equal values so a diff still shows which changed, and
// nothing of the value can be read back — HMAC-SHA256 under a random key,
// so a mask cannot be brute-forced offline either (an unkeyed hash of a
// short password can be). Argo CD masks the same way.
type Masker struct{ key []byte }

// NewMasker returns a Masker with a new random key: masks compare equal
// only among those of one Masker.
func NewMasker() *Masker {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return &Masker{key: k}
}

// Secret masks o's values in place when o is a core Secret.
func (m *Masker) Secret(o *unstructured.Unstructured) {
	if o.GetKind() != "Secret" || o.GroupVersionKind().Group != "" {
		return
	}
	for _, field := range []string{"data", "stringData"} {
		values, ok, _ := unstructured.NestedMap(o.Object, field)
		if !ok {
			continue
		}
		for k, v := range values {
			h := hmac.New(sha256.New, m.key)
			fmt.Fprint(h, v)
			values[k] = "++++++++ (" + hex.EncodeToString(h.Sum(nil)[:8]) + ")"
		}
		_ = unstructured.SetNestedMap(o.Object, values, field)
	}
}
