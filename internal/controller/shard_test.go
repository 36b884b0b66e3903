package controller

import (
	"fmt"
	"testing"
)

func TestShardOf(t *testing.T) {
	const apps = 10000
	count := func(shards int) []int {
		n := make([]int, shards)
		for i := range apps {
			n[ShardOf("argocd", fmt.Sprintf("app-%d", i), nil, shards)]++
		}
		return n
	}
	// Balanced within 10 % at 2, 3 and 5 shards.
	for _, shards := range []int{2, 3, 5} {
		for s, n := range count(shards) {
			if want := apps / shards; n < want*9/10 || n > want*11/10 {
				t.Errorf("%d shards: shard %d has %d apps, want about %d", shards, s, n, want)
			}
		}
	}
	// Adding a fourth shard moves about a quarter, all onto the new one.
	moved := 0
	for i := range apps {
		before, after := ShardOf("argocd", fmt.Sprintf("app-%d", i), nil, 3), ShardOf("argocd", fmt.Sprintf("app-%d", i), nil, 4)
		if before != after {
			moved++
			if after != 3 {
				t.Fatalf("app-%d moved from %d to %d, not to the new shard", i, before, after)
			}
		}
	}
	if moved < apps*22/100 || moved > apps*28/100 {
		t.Errorf("adding a shard moved %d of %d apps, want about a quarter", moved, apps)
	}
	// The annotation pins; an invalid one is ignored.
	if s := ShardOf("argocd", "app-1", map[string]string{ShardAnnotation: "2"}, 3); s != 2 {
		t.Errorf("pinned to 2: %d", s)
	}
	if s, h := ShardOf("argocd", "app-1", map[string]string{ShardAnnotation: "7"}, 3), ShardOf("argocd", "app-1", nil, 3); s != h {
		t.Errorf("an out-of-range pin: %d, hash says %d", s, h)
	}
	if ShardOf("a", "b", nil, 1) != 0 || ShardOf("a", "b", nil, 0) != 0 {
		t.Error("one shard")
	}
}
