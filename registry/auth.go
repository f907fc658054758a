package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrNotLoggedIn is returned by Logout when there were no credentials.
var ErrNotLoggedIn = errors.New("not logged in")

// credentialKey is the key docker uses for a registry in config.json:
// https://index.docker.io/v1/ for Docker Hub, host[:port] otherwise.
func credentialKey(r name.Registry) string {
	if r.RegistryStr() == name.DefaultRegistry {
		return authn.DefaultAuthKey
	}
	return r.RegistryStr()
}

// loadConfig reads docker's config file: $DOCKER_CONFIG/config.json or
// ~/.docker/config.json (created empty if missing).
func loadConfig() (*configfile.ConfigFile, error) {
	cf, err := config.Load(config.Dir())
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", config.Dir(), err)
	}
	return cf, nil
}

// Login checks user and password against registry (Basic or token auth, as
// the registry asks) and stores them the way docker does: in the credsStore
// or credHelper configured for it, or base64-encoded in config.json. It
// returns the key the credentials were stored under.
func Login(ctx context.Context, registry, user, password string, o Options) (string, error) {
	op := "login " + registry
	if user == "" || password == "" {
		return "", fmt.Errorf("%s: username and password are required", op)
	}
	reg, err := o.parseRegistry(registry)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	t, err := o.newTransport()
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	rt := transport.NewRetry(t, transport.WithRetryBackoff(o.backoff()), transport.WithRetryStatusCodes(retryCodes...))
	// A token registry checks the password when it hands out a token; a
	// Basic one on the request below.
	rt, err = transport.NewWithContext(ctx, reg, auth, rt, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return "", wrap(op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s://%s/v2/", reg.Scheme(), reg.RegistryStr()), nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return "", wrap(op, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return "", wrap(op, err)
	}
	cf, err := loadConfig()
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	key := credentialKey(reg)
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
		return "", fmt.Errorf("%s: storing credentials: %w", op, err)
	}
	if err := cf.Save(); err != nil {
		return "", fmt.Errorf("%s: saving %s: %w", op, cf.Filename, err)
	}
	return key, nil
}

// Logout removes the credentials for registry from docker's config (or its
// credential store). It returns ErrNotLoggedIn (wrapped) when there were none.
func Logout(registry string, o Options) error {
	op := "logout " + registry
	reg, err := o.parseRegistry(registry)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	cf, err := loadConfig()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	key := credentialKey(reg)
	_, inFile := cf.AuthConfigs[key]
	ac, err := cf.GetCredentialsStore(key).Get(key)
	if !inFile && (err != nil || ac.Username == "" && ac.Password == "" && ac.IdentityToken == "") {
		return fmt.Errorf("%s: %w", op, ErrNotLoggedIn)
	}
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return fmt.Errorf("%s: removing credentials: %w", op, err)
	}
	delete(cf.AuthConfigs, key)
	if err := cf.Save(); err != nil {
		return fmt.Errorf("%s: saving %s: %w", op, cf.Filename, err)
	}
	return nil
}
