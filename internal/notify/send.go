package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mlcd-dev/mlcd/api/v1alpha1"
)

// Service is a configured destination: Argo CD's `service.webhook.<name>`
// (url, headers, and mlcd's `secret` that HMAC-signs the body),
// `service.slack` (an incoming-webhook url) or `service.email`
// (SMTP: host, port, from, username, password).
type Service struct {
	Name    string
	Kind    string // webhook, slack or email
	URL     string
	Headers map[string]string
	Secret  string
	// SMTP for email.
	Host, From, Username, Password string
	Port                           int
	// Commit statuses (github, gitlab): a token, or a GitHub App.
	Token, AppID, InstallationID, PrivateKey string
}

// Config is the parsed ConfigMap and Secret.
type Config struct {
	Services map[string]Service
	// Templates are message templates by trigger (template.<trigger>,
	// key `message`); Go templates over {app, event}.
	Templates map[string]string
	// Statuses are the commit statuses templates set (template.<trigger>,
	// key `github.status`).
	Statuses map[string]CommitStatus
}

// ParseConfig reads argocd-notifications-cm data; "$key" values are
// looked up in the secret's data.
func ParseConfig(data map[string]string, secret map[string][]byte) (*Config, error) {
	cfg := &Config{Services: map[string]Service{}, Templates: map[string]string{}, Statuses: map[string]CommitStatus{}}
	resolve := func(v string) string {
		if k, ok := strings.CutPrefix(v, "$"); ok {
			return string(secret[k])
		}
		return v
	}
	for k, v := range data {
		switch {
		case strings.HasPrefix(k, "service.webhook."):
			var s struct {
				URL     string `json:"url"`
				Secret  string `json:"secret"`
				Headers []struct {
					Name  string `json:"name"`
					Value string `json:"value"`
				} `json:"headers"`
			}
			if err := yaml.Unmarshal([]byte(v), &s); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			name := strings.TrimPrefix(k, "service.webhook.")
			svc := Service{Name: name, Kind: "webhook", URL: resolve(s.URL), Secret: resolve(s.Secret), Headers: map[string]string{}}
			for _, h := range s.Headers {
				svc.Headers[h.Name] = resolve(h.Value)
			}
			cfg.Services[name] = svc
		case k == "service.slack" || strings.HasPrefix(k, "service.slack."):
			var s struct {
				URL string `json:"url"`
			}
			if err := yaml.Unmarshal([]byte(v), &s); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			name := strings.TrimPrefix(strings.TrimPrefix(k, "service."), "slack.")
			cfg.Services[name] = Service{Name: name, Kind: "slack", URL: resolve(s.URL)}
		case k == "service.email" || strings.HasPrefix(k, "service.email."):
			var e struct {
				Host     string `json:"host"`
				Port     int    `json:"port"`
				From     string `json:"from"`
				Username string `json:"username"`
				Password string `json:"password"`
			}
			if err := yaml.Unmarshal([]byte(v), &e); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if e.Host == "" || e.From == "" {
				return nil, fmt.Errorf("%s: host and from are required", k)
			}
			if e.Port == 0 {
				e.Port = 587
			}
			name := strings.TrimPrefix(strings.TrimPrefix(k, "service."), "email.")
			cfg.Services[name] = Service{Name: name, Kind: "email", Host: resolve(e.Host), Port: e.Port, From: resolve(e.From), Username: resolve(e.Username), Password: resolve(e.Password)}
		case k == "service.github" || strings.HasPrefix(k, "service.github.") || k == "service.gitlab" || strings.HasPrefix(k, "service.gitlab."):
			rest := strings.TrimPrefix(k, "service.")
			kind, _, _ := strings.Cut(rest, ".")
			name := strings.TrimPrefix(strings.TrimPrefix(rest, kind), ".")
			if name == "" {
				name = kind
			}
			svc, err := commitStatusService(kind, name, v, resolve)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			cfg.Services[name] = svc
		case strings.HasPrefix(k, "template."):
			var t struct {
				Message string `json:"message"`
				GitHub  struct {
					Status *CommitStatus `json:"status"`
				} `json:"github"`
			}
			if err := yaml.Unmarshal([]byte(v), &t); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			cfg.Templates[strings.TrimPrefix(k, "template.")] = t.Message
			if t.GitHub.Status != nil {
				cfg.Statuses[strings.TrimPrefix(k, "template.")] = *t.GitHub.Status
			}
		}
	}
	return cfg, nil
}

// Payload is the JSON body a webhook service receives.
type Payload struct {
	Application string   `json:"application"`
	Namespace   string   `json:"namespace"`
	Project     string   `json:"project"`
	Trigger     string   `json:"trigger"`
	Recipients  []string `json:"recipients,omitempty"`
	Revision    string   `json:"revision,omitempty"`
	SyncStatus  string   `json:"syncStatus,omitempty"`
	Health      string   `json:"healthStatus,omitempty"`
	Model       string   `json:"model,omitempty"`
	Version     string   `json:"modelVersion,omitempty"`
	// Commit is the synced revision's subject and Author who committed it.
	Commit  string `json:"commit,omitempty"`
	Author  string `json:"author,omitempty"`
	Message string `json:"message"`
	// RepoURL and Status serve commit-status services (github, gitlab).
	RepoURL string        `json:"repoURL,omitempty"`
	Status  *CommitStatus `json:"-"`
}

// Message renders the trigger's template (default: a line saying what
// happened).
func (c *Config) Message(app *v1alpha1.Application, ev Event) (string, error) {
	text, ok := c.Templates[ev.Trigger]
	if !ok {
		msg := fmt.Sprintf("Application %s/%s: %s", app.Namespace, app.Name, ev.Summary)
		if ev.Commit != "" {
			msg += fmt.Sprintf(" (commit %s %q by %s)", v1alpha1.ShortSHA(app.Status.Sync.Revision), ev.Commit, ev.Author)
		}
		return msg, nil
	}
	t, err := template.New(ev.Trigger).Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = t.Execute(&b, templateData(app, ev))
	return b.String(), err
}

// templateData is what templates see: Argo CD's templates see the app as
// JSON ({{.app.metadata.name}}).
func templateData(app *v1alpha1.Application, ev Event) map[string]any {
	raw, _ := json.Marshal(app)
	var generic map[string]any
	_ = json.Unmarshal(raw, &generic)
	return map[string]any{"app": generic, "event": ev}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// Send delivers one notification, retrying transient failures.
func Send(ctx context.Context, svc Service, p Payload) error {
	switch svc.Kind {
	case "email":
		return sendMail(ctx, svc, p)
	case "github", "gitlab":
		return sendStatus(ctx, svc, p)
	}
	var body []byte
	switch svc.Kind {
	case "slack":
		body, _ = json.Marshal(map[string]string{"text": p.Message})
	default:
		body, _ = json.Marshal(p)
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, svc.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range svc.Headers {
			req.Header.Set(k, v)
		}
		if svc.Secret != "" {
			mac := hmac.New(sha256.New, []byte(svc.Secret))
			mac.Write(body)
			req.Header.Set("X-Mlcd-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		}
		resp, err := httpClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
			last = fmt.Errorf("service %s answered HTTP %d", svc.Name, resp.StatusCode)
			if resp.StatusCode < 500 && resp.StatusCode != 429 {
				return last
			}
		} else {
			last = fmt.Errorf("service %s: %s", svc.Name, redact(err.Error(), svc))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
	return last
}

// redact keeps a service's URL (which may hold a token, as Slack's do)
// out of errors.
func redact(msg string, svc Service) string {
	if svc.URL != "" {
		msg = strings.ReplaceAll(msg, svc.URL, "<"+svc.Name+" url>")
	}
	for _, s := range []string{svc.Token, svc.Password, svc.Secret} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}

// sendMail sends p to its recipients through the service's SMTP server
// (STARTTLS when the server offers it; PLAIN auth with a username).
func sendMail(ctx context.Context, svc Service, p Payload) error {
	if len(p.Recipients) == 0 {
		return fmt.Errorf("service %s: no recipient (subscribe with notifications.argoproj.io/subscribe.<trigger>.%s: a@example.com;b@example.com)", svc.Name, svc.Name)
	}
	subject := fmt.Sprintf("[mlcd] %s/%s: %s", p.Namespace, p.Application, p.Trigger)
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		svc.From, strings.Join(p.Recipients, ", "), subject, strings.ReplaceAll(p.Message, "\n", "\r\n"))
	addr := net.JoinHostPort(svc.Host, strconv.Itoa(svc.Port))
	var auth smtp.Auth
	if svc.Username != "" {
		auth = smtp.PlainAuth("", svc.Username, svc.Password, svc.Host)
	}
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(addr, auth, svc.From, p.Recipients, msg.Bytes()) }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		if err != nil {
			return fmt.Errorf("service %s: %s", svc.Name, strings.ReplaceAll(err.Error(), svc.Password, "<password>"))
		}
		return nil
	}
}
