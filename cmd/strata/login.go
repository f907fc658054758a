package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/strata-dev/strata/registry"
)

func init() {
	register(func(g *globals) *cobra.Command {
		var rf registryFlags
		var user, password string
		var passwordStdin bool
		c := &cobra.Command{
			Use:   "login [flags] [REGISTRY]",
			Short: "Log in to a registry (default Docker Hub); credentials go to docker's config.json",
			Args:  cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				reg := "docker.io"
				if len(args) == 1 {
					reg = args[0]
				}
				rf.quiet = true
				o, _, err := rf.options(g)
				if err != nil {
					return err
				}
				in := cmd.InOrStdin()
				if password != "" && passwordStdin {
					return errors.New("login: --password and --password-stdin are exclusive")
				}
				if passwordStdin {
					if user == "" {
						return errors.New("login: --password-stdin needs --username")
					}
					b, err := io.ReadAll(io.LimitReader(in, 1<<16))
					if err != nil {
						return fmt.Errorf("login: reading password: %w", err)
					}
					password = strings.TrimRight(string(b), "\r\n")
				} else if password == "" {
					if !isTerminal(os.Stdin) {
						return errors.New("login: no password: use --password-stdin")
					}
					r := bufio.NewReader(os.Stdin)
					if user == "" {
						fmt.Fprint(g.errw, "Username: ")
						l, _ := r.ReadString('\n')
						user = strings.TrimSpace(l)
					}
					fmt.Fprint(g.errw, "Password: ")
					password, err = readPassword(os.Stdin, r)
					fmt.Fprintln(g.errw)
					if err != nil {
						return fmt.Errorf("login: reading password: %w", err)
					}
				} else {
					fmt.Fprintln(g.errw, "WARNING! Using --password on the command line is insecure. Use --password-stdin.")
				}
				if _, err := registry.Login(cmd.Context(), reg, user, password, o); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "Login Succeeded")
				return nil
			},
		}
		rf.add(c.Flags())
		c.Flags().StringVarP(&user, "username", "u", "", "user name")
		c.Flags().StringVarP(&password, "password", "p", "", "password (insecure: use --password-stdin)")
		c.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
		return c
	})
}

// readPassword reads a line from the terminal f with echo off.
func readPassword(f *os.File, r *bufio.Reader) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", err
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	l, err := r.ReadString('\n')
	if err != nil && l == "" {
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}
