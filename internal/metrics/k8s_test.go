package metrics

import "testing"

func TestResourceOf(t *testing.T) {
	for path, want := range map[string][2]string{
		"/api/v1/namespaces/team-a/configmaps/x":            {"configmaps", "team-a"},
		"/api/v1/namespaces/team-a/configmaps":              {"configmaps", "team-a"},
		"/apis/apps/v1/namespaces/ns/deployments/x/status":  {"deployments/status", "ns"},
		"/api/v1/namespaces/ns":                             {"namespaces", ""},
		"/api/v1/namespaces":                                {"namespaces", ""},
		"/apis/rbac.authorization.k8s.io/v1/clusterroles/x": {"clusterroles", ""},
		"/version": {"", ""},
	} {
		r, ns := ResourceOf(path)
		if r != want[0] || ns != want[1] {
			t.Errorf("ResourceOf(%q) = %q, %q; want %q, %q", path, r, ns, want[0], want[1])
		}
	}
}
