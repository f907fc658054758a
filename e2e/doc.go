// Package e2e holds end-to-end tests that build the strata binary and drive it as a user would, against real components.
package e2e
