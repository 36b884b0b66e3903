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

func TestHasErrorLine(t *testing.T) {
	if hasErrorLine(`{"level":"warn","error":"rpc error: code = Canceled"}`) {
		t.Error("a component log line mentioning an error is not the helper's error line")
	}
	if !hasErrorLine("I1125 starting\nerror: state dir /x is in use\n") {
		t.Error("the helper's error line was not found")
	}
}
