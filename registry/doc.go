// Package registry moves images between the local store and
// Docker-Hub-compatible registries (OCI distribution / Docker Registry v2):
// push, pull, copy, tags, delete, remote inspect, login and logout.
//
// It is built on go-containerregistry's remote, transport, authn and name
// packages and adds what a daemonless CLI needs around them: docker's
// credential file and certificate conventions, plain HTTP only for loopback
// or named insecure registries, retries that honour Retry-After, blob
// downloads that resume with Range requests, digest and size checks before
// anything reaches the store, and progress output.
//
// Pulled images keep the registry's blobs, so their manifest digest is the
// same locally and remotely; pushed images go through the store's
// CompressedImage so a layer is compressed at most once.
package registry
