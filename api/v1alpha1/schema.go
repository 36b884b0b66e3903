package v1alpha1

import (
	"encoding/json"
	"reflect"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// SchemaOf is the OpenAPI v3 schema of a Go type, as the CRDs carry it:
// the equivalent of controller-gen for these types. Field names come from
// json tags; runtime.RawExtension, `any` and fields tagged mlcd:"opaque"
// keep unknown fields (as Argo CD's valuesObject does); every other object
// is structural, so the API server refuses or warns about unknown fields
// (`selfheal:` for `selfHeal:`) instead of keeping them silently.
func SchemaOf(t reflect.Type) apiextensionsv1.JSONSchemaProps {
	return schemaOf(t, map[reflect.Type]bool{})
}

var (
	timeType   = reflect.TypeOf(metav1.Time{})
	rawType    = reflect.TypeOf(runtime.RawExtension{})
	intStrType = reflect.TypeOf(intstr.IntOrString{})
	jsonType   = reflect.TypeOf(json.RawMessage{})
)

func opaque() apiextensionsv1.JSONSchemaProps {
	return apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptrTo(true)}
}

func schemaOf(t reflect.Type, seen map[reflect.Type]bool) apiextensionsv1.JSONSchemaProps {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType:
		return apiextensionsv1.JSONSchemaProps{Type: "string", Format: "date-time"}
	case rawType:
		return opaque()
	case jsonType:
		return apiextensionsv1.JSONSchemaProps{XPreserveUnknownFields: ptrTo(true)}
	case intStrType:
		return apiextensionsv1.JSONSchemaProps{XIntOrString: true, AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "integer"}, {Type: "string"}}}
	}
	switch t.Kind() {
	case reflect.String:
		return apiextensionsv1.JSONSchemaProps{Type: "string"}
	case reflect.Bool:
		return apiextensionsv1.JSONSchemaProps{Type: "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return apiextensionsv1.JSONSchemaProps{Type: "integer"}
	case reflect.Float32, reflect.Float64:
		return apiextensionsv1.JSONSchemaProps{Type: "number"}
	case reflect.Interface:
		return apiextensionsv1.JSONSchemaProps{XPreserveUnknownFields: ptrTo(true)}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return apiextensionsv1.JSONSchemaProps{Type: "string", Format: "byte"}
		}
		items := schemaOf(t.Elem(), seen)
		return apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &items}}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return opaque()
		}
		v := schemaOf(t.Elem(), seen)
		return apiextensionsv1.JSONSchemaProps{Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &v}}
	case reflect.Struct:
		if seen[t] {
			return opaque() // a recursive type: no deeper schema
		}
		seen[t] = true
		defer delete(seen, t)
		out := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{}}
		addFields(&out, t, seen)
		return out
	}
	return opaque()
}

func addFields(out *apiextensionsv1.JSONSchemaProps, t reflect.Type, seen map[reflect.Type]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			addFields(out, ft, seen)
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := schemaOf(f.Type, seen)
		if f.Tag.Get("mlcd") == "opaque" {
			s = opaque()
		}
		out.Properties[name] = s
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer && f.Type.Kind() != reflect.Slice && f.Type.Kind() != reflect.Map && f.Type.Kind() != reflect.Struct {
			out.Required = append(out.Required, name)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
