// Package httpguard refuses what a web page the user has open in a
// browser can make it send to a server on the user's machine (mlcd's API
// and its embedded registry, both on 127.0.0.1 by default):
//
//   - a cross-site POST that needs no preflight: a form or fetch() can POST
//     text/plain, form-encoded or multipart bodies, or no body at all, to
//     any address. A POST must carry Content-Type application/json (which
//     a page can only send after a CORS preflight neither server answers)
//     or an Authorization header (likewise). PUT, PATCH and DELETE always
//     need a preflight.
//   - DNS rebinding: a page's own host name re-pointed at 127.0.0.1 reaches
//     the server with its own Host header. A request that arrives on a
//     loopback address must name an IP address or localhost (or a host
//     the server is told to allow) as its Host.
//
// MLflow's own server added the same Host and CORS checks (MLflow 3) for
// the same reason.
package httpguard

import (
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"strings"
)

// Options configure Wrap.
type Options struct {
	// AllowedHosts are further Host names a loopback request may carry
	// (a name in /etc/hosts, say); "*" turns the Host check off.
	AllowedHosts []string
	// Exempt requests are passed through (signed webhooks: their
	// signature, not their origin, is what authenticates them).
	Exempt func(*http.Request) bool
}

// Wrap returns next behind the checks.
func Wrap(next http.Handler, o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Exempt != nil && o.Exempt(r) {
			next.ServeHTTP(w, r)
			return
		}
		if loopback(r) && !hostAllowed(r.Host, o.AllowedHosts) {
			refuse(w, http.StatusMisdirectedRequest, "host "+r.Host+" is not served here (a request on a loopback address must name 127.0.0.1, [::1] or localhost: DNS rebinding)")
			return
		}
		if r.Method == http.MethodPost && r.Header.Get("Authorization") == "" && !isJSON(r.Header.Get("Content-Type")) {
			refuse(w, http.StatusUnsupportedMediaType, "a POST must be sent as Content-Type: application/json (a web page can POST other types to this address without asking)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

func loopback(r *http.Request) bool {
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hostAllowed(hostport string, allowed []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if net.ParseIP(host) != nil || host == "localhost" || host == "" {
		return true
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": msg, "code": status})
}
