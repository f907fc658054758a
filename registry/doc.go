// Package registry moves images between the local store and Docker-Hub-compatible registries: push, pull, copy, auth, retries and progress.
package registry
