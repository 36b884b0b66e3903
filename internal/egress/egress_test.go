package egress_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mlcd-dev/mlcd/internal/egress"
)

func TestCheck(t *testing.T) {
	strict := egress.Policy{}
	loose, _ := egress.Parse("loopback,private,203.0.113.0/24")
	for _, c := range []struct {
		addr          string
		strict, loose bool // allowed?
	}{
		{"169.254.169.254", false, false},
		{"169.254.10.1", false, false},
		{"fe80::1", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"0.0.0.0", false, false},
		{"224.0.0.1", false, false},
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"10.96.0.10", false, true},
		{"192.168.1.1", false, true},
		{"100.64.0.1", false, true},
		{"fd00::1", false, true},
		{"8.8.8.8", true, true},
		{"2606:4700::1111", true, true},
	} {
		a := netip.MustParseAddr(c.addr)
		if got := strict.Check(a) == nil; got != c.strict {
			t.Errorf("strict %s: allowed %v, want %v", c.addr, got, c.strict)
		}
		if got := loose.Check(a) == nil; got != c.loose {
			t.Errorf("loose %s: allowed %v, want %v", c.addr, got, c.loose)
		}
	}
	if _, err := egress.Parse("everything"); err == nil {
		t.Error("an unknown allow word was accepted")
	}
}

// A name that resolves to the metadata address is refused before any
// connection (the resolver is injected: no real metadata address is
// ever dialled), and a redirect to another host is not followed.
func TestClient(t *testing.T) {
	dialled := 0
	p := egress.Policy{
		AllowLoopback: true,
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			if host == "metadata.example" {
				return []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("169.254.169.254")}, nil
			}
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialled++
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	c := p.Client(5 * time.Second)
	_, err := c.Get("http://metadata.example/latest/meta-data/")
	if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "link-local") {
		t.Fatalf("metadata by name: %v", err)
	}
	if dialled != 0 {
		t.Fatalf("dialled %d times for a refused name", dialled)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("other")) }))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(other.URL, "127.0.0.1", "localhost", 1), http.StatusFound)
	}))
	defer redirect.Close()
	if _, err := c.Get(redirect.URL); !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("redirect to another host: %v", err)
	}
	resp, err := c.Get(other.URL)
	if err != nil {
		t.Fatalf("an allowed loopback server: %v", err)
	}
	resp.Body.Close()
}
