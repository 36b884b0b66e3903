package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the set of files the control plane needs. They are made once per
// state dir and reused on restart, so clients holding the kubeconfig keep
// working across restarts.
type pki struct {
	dir string
}

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p pki) caCert() string     { return p.path("ca.crt") }
func (p pki) caKey() string      { return p.path("ca.key") }
func (p pki) serverCert() string { return p.path("apiserver.crt") }
func (p pki) serverKey() string  { return p.path("apiserver.key") }
func (p pki) adminCert() string  { return p.path("admin.crt") }
func (p pki) adminKey() string   { return p.path("admin.key") }
func (p pki) saKey() string      { return p.path("sa.key") }
func (p pki) saPub() string      { return p.path("sa.pub") }

// ensure creates any missing file. A half-written set (one file missing) is
// regenerated whole, because certificates must chain to one CA.
func (p pki) ensure() error {
	files := []string{p.caCert(), p.caKey(), p.serverCert(), p.serverKey(), p.adminCert(), p.adminKey(), p.saKey(), p.saPub()}
	missing := 0
	for _, f := range files {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("create pki dir: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mlcd-local-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)

	issue := func(serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = now
		tmpl.NotAfter = now.Add(10 * 365 * 24 * time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		return der, key, err
	}
	serverDER, serverKey, err := issue(2, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
	})
	if err != nil {
		return err
	}
	adminDER, adminKey, err := issue(3, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "mlcd-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	writes := []struct {
		path, typ string
		der       []byte
	}{
		{p.caCert(), "CERTIFICATE", caDER},
		{p.serverCert(), "CERTIFICATE", serverDER},
		{p.adminCert(), "CERTIFICATE", adminDER},
		{p.saKey(), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)},
		{p.saPub(), "PUBLIC KEY", saPub},
	}
	for _, k := range []struct {
		path string
		key  *ecdsa.PrivateKey
	}{{p.caKey(), caKey}, {p.serverKey(), serverKey}, {p.adminKey(), adminKey}} {
		der, err := x509.MarshalECPrivateKey(k.key)
		if err != nil {
			return err
		}
		writes = append(writes, struct {
			path, typ string
			der       []byte
		}{k.path, "EC PRIVATE KEY", der})
	}
	for _, w := range writes {
		data := pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der})
		if err := os.WriteFile(w.path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", w.path, err)
		}
	}
	return nil
}

// kubeconfig renders an admin kubeconfig for the server at host:port with
// the certificates embedded, so the file can be copied elsewhere.
func (p pki) kubeconfig(server string) ([]byte, error) {
	ca, err := os.ReadFile(p.caCert())
	if err != nil {
		return nil, err
	}
	crt, err := os.ReadFile(p.adminCert())
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(p.adminKey())
	if err != nil {
		return nil, err
	}
	b64 := func(b []byte) string { return base64Std(b) }
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: mlcd
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: mlcd-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: mlcd
  context:
    cluster: mlcd
    user: mlcd-admin
current-context: mlcd
`, server, b64(ca), b64(crt), b64(key))), nil
}
