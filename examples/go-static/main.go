// Command hello prints a greeting; it is built by examples/go-static/Dockerfile.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Printf("hello from a static Go binary (%s/%s, uid %d)\n", runtime.GOOS, runtime.GOARCH, os.Getuid())
}
