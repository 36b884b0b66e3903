package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ClientOptions configure a Client. Build them with OptionsFromEnv to honour
// MLflow's environment variables.
type ClientOptions struct {
	// URL of the tracking server, e.g. http://127.0.0.1:5000.
	URL string
	// Username and Password select HTTP Basic auth; they win over Token.
	Username, Password string
	// Token selects Bearer auth.
	Token string
	// Timeout bounds each HTTP attempt. Default 30s.
	Timeout time.Duration
	// MaxRetries is how often a 429 or 5xx answer is retried. Default 3.
	MaxRetries int
	// RetryBackoff is the first retry's delay, doubled each time. Default 200ms.
	RetryBackoff time.Duration
	// InsecureSkipVerify disables TLS verification (MLFLOW_TRACKING_INSECURE_TLS).
	InsecureSkipVerify bool
	// CAFile is a PEM bundle to verify the server (MLFLOW_TRACKING_SERVER_CERT_PATH).
	CAFile string
	// HTTPClient overrides the transport entirely.
	HTTPClient *http.Client
	// OnRequest, when set, is told of every attempt: the MLflow route
	// (e.g. "model-versions/get", never a query) and the HTTP status code
	// ("error" when no answer came).
	OnRequest func(route, code string)
}

// OptionsFromEnv returns options from MLflow's client environment: the URL
// argument wins over MLFLOW_TRACKING_URI.
func OptionsFromEnv(rawURL string) ClientOptions {
	o := ClientOptions{URL: rawURL}
	if o.URL == "" {
		o.URL = os.Getenv("MLFLOW_TRACKING_URI")
	}
	o.Username = os.Getenv("MLFLOW_TRACKING_USERNAME")
	o.Password = os.Getenv("MLFLOW_TRACKING_PASSWORD")
	o.Token = os.Getenv("MLFLOW_TRACKING_TOKEN")
	o.InsecureSkipVerify = strings.EqualFold(os.Getenv("MLFLOW_TRACKING_INSECURE_TLS"), "true")
	o.CAFile = os.Getenv("MLFLOW_TRACKING_SERVER_CERT_PATH")
	return o
}

// Validate reports whether the options can build a client.
func (o ClientOptions) Validate() error {
	if o.URL == "" {
		return errors.New("no registry URL: pass --registry or set MLFLOW_TRACKING_URI")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return errors.New("registry URL does not parse: it must be http(s)://host[:port]")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("registry URL %q must be http(s)://host[:port]", u.Redacted())
	}
	return nil
}

// Client talks to an MLflow-compatible tracking server.
type Client struct {
	base         string
	http         *http.Client
	auth         func(*http.Request)
	maxRetries   int
	retryBackoff time.Duration
	onRequest    func(route, code string)
}

// NewClient returns a client for the server in opts.
func NewClient(opts ClientOptions) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 3
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = 200 * time.Millisecond
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		if opts.InsecureSkipVerify || opts.CAFile != "" {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: opts.InsecureSkipVerify} //nolint:gosec // opt-in, as MLFLOW_TRACKING_INSECURE_TLS
			if opts.CAFile != "" {
				pem, err := os.ReadFile(opts.CAFile)
				if err != nil {
					return nil, fmt.Errorf("read registry CA file: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("registry CA file %s holds no PEM certificate", opts.CAFile)
				}
				tr.TLSClientConfig.RootCAs = pool
			}
		}
		hc = &http.Client{Transport: tr, Timeout: opts.Timeout}
	}
	// Credentials in the URL (http://user:pass@host) become basic auth and
	// leave the URL, which errors and logs show.
	base := opts.URL
	if u, err := url.Parse(opts.URL); err == nil && u.User != nil {
		if opts.Username == "" && opts.Password == "" && opts.Token == "" {
			opts.Username = u.User.Username()
			opts.Password, _ = u.User.Password()
		}
		u.User = nil
		base = u.String()
	}
	c := &Client{
		base:         strings.TrimRight(base, "/"),
		http:         hc,
		auth:         func(*http.Request) {},
		maxRetries:   opts.MaxRetries,
		retryBackoff: opts.RetryBackoff,
		onRequest:    opts.OnRequest,
	}
	switch {
	case opts.Username != "" || opts.Password != "":
		user, pass := opts.Username, opts.Password
		c.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) }
	case opts.Token != "":
		token := opts.Token
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
	}
	return c, nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base }

const apiPrefix = "/api/2.0/mlflow/"

// get calls a GET endpoint with query parameters.
func (c *Client) get(ctx context.Context, endpoint string, q url.Values, out any) error {
	u := c.base + apiPrefix + endpoint
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return c.do(ctx, http.MethodGet, u, nil, out)
}

// send calls a POST, PATCH or DELETE endpoint with a JSON body.
func (c *Client) send(ctx context.Context, method, endpoint string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", endpoint, err)
	}
	return c.do(ctx, method, c.base+apiPrefix+endpoint, body, out)
}

func (c *Client) do(ctx context.Context, method, u string, body []byte, out any) error {
	backoff := c.retryBackoff
	for attempt := 0; ; attempt++ {
		retry, wait, err := c.attempt(ctx, method, u, body, out)
		if !retry || attempt >= c.maxRetries {
			return err
		}
		if wait == 0 {
			wait = backoff + time.Duration(rand.Int64N(int64(backoff)/2+1))
			backoff *= 2
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// attempt makes one request. It reports whether the answer is worth a retry
// (429 or 5xx only) and how long the server asked to wait.
func (c *Client) attempt(ctx context.Context, method, u string, body []byte, out any) (bool, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return false, 0, err
	}
	if body != nil || method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "mlcd")
	c.auth(req)
	resp, err := c.http.Do(req)
	if c.onRequest != nil {
		code := "error"
		if err == nil {
			code = strconv.Itoa(resp.StatusCode)
		}
		_, route, _ := strings.Cut(req.URL.Path, apiPrefix)
		c.onRequest(route, code)
	}
	if err != nil {
		return false, 0, fmt.Errorf("registry %s %s: %w", method, redact(u), unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return false, 0, fmt.Errorf("registry %s %s: read answer: %w", method, redact(u), err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil || len(bytes.TrimSpace(data)) == 0 {
			return false, 0, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return false, 0, fmt.Errorf("registry %s %s: decode answer: %w", method, redact(u), err)
		}
		return false, 0, nil
	}
	apiErr := &Error{Status: resp.StatusCode}
	if decodeError(data, apiErr) != nil {
		apiErr.Message = strings.TrimSpace(string(data))
		if len(apiErr.Message) > 200 {
			apiErr.Message = apiErr.Message[:200] + "…"
		}
		if apiErr.Message == "" {
			apiErr.Message = http.StatusText(resp.StatusCode)
		}
	}
	retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	var wait time.Duration
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 && secs <= 60 {
			wait = time.Duration(secs) * time.Second
		}
	}
	return retry, wait, apiErr
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact drops query values from a URL so errors never carry data that a
// caller may consider sensitive.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// decodeError reads MLflow's {"error_code": …, "message": …} body.
func decodeError(data []byte, e *Error) error {
	if err := json.Unmarshal(data, e); err != nil || e.Code == "" {
		e.Code = ""
		return errors.New("not an MLflow error body")
	}
	return nil
}
