// Command agentls lists the keys of the SSH agent at $SSH_AUTH_SOCK, one
// "TYPE SHA256:FINGERPRINT COMMENT" line each: the e2e tests copy it, built
// static, into an image to check RUN --mount=type=ssh from inside.
package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func main() {
	c, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keys, err := agent.NewClient(c).List()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, k := range keys {
		fmt.Println(k.Type(), ssh.FingerprintSHA256(k), k.Comment)
	}
}
