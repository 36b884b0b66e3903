// Package egress is the one policy for every request a tenant's YAML can
// aim: the analysis providers (web, Prometheus, golden sets) and
// notification webhooks. A tenant who writes an AnalysisTemplate must not
// reach the cloud's metadata service, the node's loopback or the cluster's
// internal services through the controller:
//
//   - link-local addresses (169.254.0.0/16, fe80::/10, where every cloud's
//     metadata service lives) and other never-routable ones (unspecified,
//     multicast, broadcast) are always refused;
//   - loopback and private/cluster-internal ranges (RFC 1918, 100.64/10,
//     fc00::/7) only when the admin allows them (Allow), as `mlcd up` does
//     for loopback, where its example runs;
//   - every address a name resolves to is checked, and the connection is
//     made to the checked address (no second lookup to rebind);
//   - a redirect to another host is not followed; every request has a
//     timeout.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Policy says which address ranges requests may reach.
type Policy struct {
	// AllowLoopback lets requests reach 127.0.0.0/8 and ::1.
	AllowLoopback bool
	// AllowPrivate lets requests reach RFC 1918, 100.64.0.0/10 (carrier
	// NAT, some clusters' pod ranges) and fc00::/7.
	AllowPrivate bool
	// AllowCIDRs are further ranges allowed (never link-local).
	AllowCIDRs []netip.Prefix
	// Resolve and Dial are the resolver and dialer (tests inject theirs;
	// default net.DefaultResolver and a net.Dialer).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	Dial    func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrRefused is a destination the policy does not allow.
var ErrRefused = errors.New("refused by the egress policy")

// Parse reads a comma-separated allow list: "loopback", "private" or
// CIDRs ("10.96.0.0/12"); "" allows public addresses only.
func Parse(s string) (Policy, error) {
	var p Policy
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "":
		case "loopback":
			p.AllowLoopback = true
		case "private":
			p.AllowPrivate = true
		default:
			pr, err := netip.ParsePrefix(f)
			if err != nil {
				return p, fmt.Errorf("egress allow %q: want loopback, private or a CIDR", f)
			}
			p.AllowCIDRs = append(p.AllowCIDRs, pr.Masked())
		}
	}
	return p, nil
}

var (
	cgnat      = netip.MustParsePrefix("100.64.0.0/10")
	metadataV4 = netip.MustParseAddr("169.254.169.254")
)

// Check says whether a may be reached, and if not, why.
func (p Policy) Check(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a == metadataV4:
		return fmt.Errorf("%w: %s is link-local (cloud metadata services live there) and is always refused", ErrRefused, a)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %s is not a unicast address", ErrRefused, a)
	}
	for _, c := range p.AllowCIDRs {
		if c.Contains(a) {
			return nil
		}
	}
	switch {
	case a.IsLoopback():
		if !p.AllowLoopback {
			return fmt.Errorf("%w: %s is loopback (allow it with --egress-allow=loopback)", ErrRefused, a)
		}
	case a.IsPrivate() || cgnat.Contains(a):
		if !p.AllowPrivate {
			return fmt.Errorf("%w: %s is a private or cluster-internal address (allow it with --egress-allow=private or its CIDR)", ErrRefused, a)
		}
	}
	return nil
}

// Client is an HTTP client whose every connection goes through the policy,
// which follows no redirect to another host, and whose requests time out
// after timeout (a request's own context may end it sooner).
func (p Policy) Client(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would hide the destination
		DialContext:           p.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return p.clientWith(tr, timeout)
}

// Wrap returns a client like Client over transport tr (whose DialContext
// it replaces): for callers that need their own TLS settings.
func (p Policy) Wrap(tr *http.Transport, timeout time.Duration) *http.Client {
	tr = tr.Clone()
	tr.Proxy = nil
	tr.DialContext = p.dialContext
	return p.clientWith(tr, timeout)
}

func (p Policy) clientWith(tr *http.Transport, timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			if !strings.EqualFold(req.URL.Host, via[0].URL.Host) || req.URL.Scheme != via[0].URL.Scheme {
				return fmt.Errorf("%w: a redirect from %s to another host (%s) is not followed", ErrRefused, via[0].URL.Host, req.URL.Host)
			}
			return nil
		},
	}
}

func (p Policy) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a}
	} else {
		resolve := p.Resolve
		if resolve == nil {
			resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		if addrs, err = resolve(ctx, host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("%s resolves to no address", host)
		}
	}
	// Every address must pass: a name that resolves to a public and a
	// metadata address is refused, not tried until one works.
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	}
	dial := p.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		dial = d.DialContext
	}
	var lastErr error
	for _, a := range addrs {
		c, err := dial(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
