package registry_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/internal/registry"
	"github.com/mlcd-dev/mlcd/internal/registry/registrytest"
)

// TestMain doubles as the registry child of TestKill9LosesNothingCommitted.
func TestMain(m *testing.M) {
	if db := os.Getenv("MLCD_REGISTRY_CHILD_DB"); db != "" {
		srv, err := registry.NewServer(registry.ServerOptions{DB: db})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(1)
		}
		fmt.Println(ln.Addr().String())
		_ = http.Serve(ln, srv)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLoad50Clients runs 50 concurrent clients × 200 operations over
// loopback: no errors, no lost writes. It logs latency and throughput;
// it asserts behaviour only.
func TestLoad50Clients(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	r := registrytest.Start(t, registry.ServerOptions{})
	ctx := context.Background()
	c := r.Client
	if _, err := c.CreateRegisteredModel(ctx, "shared", "", nil); err != nil {
		t.Fatal(err)
	}
	const clients, ops = 50, 200
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			mine := fmt.Sprintf("model-%d", i)
			local := make([]time.Duration, 0, ops)
			timed := func(f func() error) error {
				t0 := time.Now()
				err := f()
				local = append(local, time.Since(t0))
				return err
			}
			if err := timed(func() error { _, err := c.CreateRegisteredModel(ctx, mine, "", nil); return err }); err != nil {
				errs <- err
				return
			}
			for j := 1; len(local) < ops; j++ {
				var err error
				switch j % 4 {
				case 0: // contended: every client adds versions to one model
					err = timed(func() error {
						_, err := c.CreateModelVersion(ctx, "shared", registry.CreateVersionOptions{Source: "s3://s", Tags: []registry.Tag{{Key: "by", Value: mine}}})
						return err
					})
				case 1:
					err = timed(func() error {
						_, err := c.CreateModelVersion(ctx, mine, registry.CreateVersionOptions{Source: "s3://m"})
						return err
					})
				case 2:
					err = timed(func() error { return c.SetRegisteredModelTag(ctx, mine, "k"+strconv.Itoa(j), "v") })
				case 3:
					err = timed(func() error { _, err := c.GetRegisteredModel(ctx, mine); return err })
				}
				if err != nil {
					errs <- fmt.Errorf("client %d op %d: %w", i, j, err)
					return
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each client did ops-1 operations after creating its model; a quarter
	// of j=1..ops-1 hit the shared model.
	wantShared := clients * ((ops - 1) / 4)
	vs, err := c.AllModelVersions(ctx, registry.SearchOptions{Filter: "name = 'shared'"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != wantShared {
		t.Fatalf("shared model has %d versions, want %d (lost or duplicated writes)", len(vs), wantShared)
	}
	nums := map[string]bool{}
	for _, v := range vs {
		nums[v.Version] = true
	}
	if len(nums) != wantShared {
		t.Fatalf("duplicate version numbers: %d distinct of %d", len(nums), wantShared)
	}
	slices.Sort(lat)
	t.Logf("load: %d ops in %s = %.0f ops/s; p50 %s, p99 %s", len(lat), elapsed.Round(time.Millisecond),
		float64(len(lat))/elapsed.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100])
}

// TestKill9LosesNothingCommitted writes through a registry in a child
// process, SIGKILLs it mid-stream and checks every acknowledged write after
// a restart on the same file.
func TestKill9LosesNothingCommitted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	db := filepath.Join(t.TempDir(), "registry.db")
	start := func() (*exec.Cmd, *registry.Client) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MLCD_REGISTRY_CHILD_DB="+db)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		c, _ := registry.NewClient(registry.ClientOptions{URL: "http://" + line[:len(line)-1], MaxRetries: -1})
		return cmd, c
	}
	cmd, c := start()
	ctx := context.Background()
	if _, err := c.CreateRegisteredModel(ctx, "crash", "", nil); err != nil {
		t.Fatal(err)
	}
	var acked sync.Map
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, err := c.CreateModelVersion(ctx, "crash", registry.CreateVersionOptions{Source: "s3://c"})
				if err != nil {
					return
				}
				acked.Store(v.Version, true)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	wg.Wait()

	cmd2, c2 := start()
	defer func() { _ = cmd2.Process.Kill(); _ = cmd2.Wait() }()
	n := 0
	acked.Range(func(k, _ any) bool {
		n++
		if _, err := c2.GetModelVersion(ctx, "crash", k.(string)); err != nil {
			t.Errorf("acknowledged version %s lost after kill -9: %v", k, err)
		}
		return true
	})
	if n == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}
	t.Logf("%d acknowledged versions survived kill -9", n)
}

// A relative db path (mlcd up's default state dir is ".mlcd") must work.
func TestRelativeDBPath(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	srv, err := registry.NewServer(registry.ServerOptions{DB: filepath.Join(".mlcd", "registry", "registry.db")})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := os.Stat(filepath.Join(dir, ".mlcd", "registry", "registry.db")); err != nil {
		t.Fatalf("db not created under the relative path: %v", err)
	}
}
