package v1alpha1

import (
	"encoding/json"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/randfill"
)

// roots are the kinds the scheme registers: each must copy deeply.
func roots() []runtime.Object {
	return []runtime.Object{
		&Application{}, &ApplicationList{}, &AppProject{}, &AppProjectList{},
		&ApplicationSet{}, &ApplicationSetList{}, &AnalysisTemplate{}, &AnalysisTemplateList{},
		&ClusterAnalysisTemplate{}, &ClusterAnalysisTemplateList{},
		&ModelPolicy{}, &ModelPolicyList{}, &ModelRollout{}, &ModelRolloutList{},
	}
}

// filler fills every field; raw JSON fields carry valid JSON, and a
// RawExtension no Object (an interface the API server never sets on these
// kinds).
func filler(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0.1).NumElements(1, 3).MaxDepth(12).Funcs(
		func(r *runtime.RawExtension, c randfill.Continue) {
			r.Raw = []byte(`{"k":` + quote(c.String(8)) + `}`)
		},
		func(f *metav1.FieldsV1, c randfill.Continue) {
			f.Raw = []byte(`{` + quote("f:"+c.String(8)) + `:{}}`)
		},
		func(r *json.RawMessage, c randfill.Continue) {
			*r = json.RawMessage(quote(c.String(8)))
		},
	)
}

func quote(s string) string {
	data, _ := json.Marshal(s)
	return string(data)
}

// TestDeepCopy: a copy of a randomly filled object equals it, serializes
// to the same JSON, and shares no memory with it (filling the copy again
// leaves the original's JSON unchanged).
func TestDeepCopy(t *testing.T) {
	for _, kind := range roots() {
		name := reflect.TypeOf(kind).Elem().Name()
		for seed := range int64(5) {
			in := reflect.New(reflect.TypeOf(kind).Elem()).Interface().(runtime.Object)
			filler(seed).Fill(in)
			before, err := json.Marshal(in)
			if err != nil {
				t.Fatalf("%s seed %d: %v", name, seed, err)
			}
			out := in.DeepCopyObject()
			if reflect.TypeOf(out) != reflect.TypeOf(in) {
				t.Fatalf("%s: DeepCopyObject returned a %T", name, out)
			}
			if !reflect.DeepEqual(in, out) {
				t.Fatalf("%s seed %d: the copy differs from the original", name, seed)
			}
			filler(seed + 1000).Fill(out)
			after, _ := json.Marshal(in)
			if string(before) != string(after) {
				t.Fatalf("%s seed %d: changing the copy changed the original:\n%s\n%s", name, seed, before, after)
			}
		}
	}
}

// BenchmarkApplicationDeepCopy copies an Application with a full status;
// the reference in the same run is a JSON round trip (how the kinds
// were copied before generated code: every cache read paid for it).
func BenchmarkApplicationDeepCopy(b *testing.B) {
	app := &Application{}
	filler(1).NilChance(0).Fill(app)
	b.Run("generated", func(b *testing.B) {
		for b.Loop() {
			_ = app.DeepCopy()
		}
	})
	b.Run("json-reference", func(b *testing.B) {
		for b.Loop() {
			data, _ := json.Marshal(app)
			var out Application
			_ = json.Unmarshal(data, &out)
		}
	})
}
