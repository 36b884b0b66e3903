package source

import (
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// knownHostsCallback verifies SSH host keys against a known_hosts text.
func knownHostsCallback(text string) (ssh.HostKeyCallback, error) {
	f, err := os.CreateTemp("", "mlcd-known-hosts-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("parse known hosts: %w", err)
	}
	return cb, nil
}
