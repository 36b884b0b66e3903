package localcluster

import (
	"os"
	"strings"
	"testing"
)

// The Makefile builds the helper too; both must use the same version flags.
func TestMakefileUsesSameLDFlags(t *testing.T) {
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "LDFLAGS := "+LDFlags+"\n") {
		t.Fatalf("Makefile LDFLAGS differ from localcluster.LDFlags %q", LDFlags)
	}
}
