// Package builder turns a Dockerfile into a stage graph and executes each instruction, producing images in the store.
package builder
