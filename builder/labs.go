package builder

import (
	_ "unsafe" // go:linkname

	_ "github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// BuildKit v0.16 parses COPY --exclude and COPY --parents only when its
// frontend is built with the tags dfexcludepatterns and dfparents (the
// dockerfile:1-labs image). strata supports both always, so it switches the
// parser's two flags on rather than requiring build tags from every build
// of strata.

//go:linkname excludePatternsEnabled github.com/moby/buildkit/frontend/dockerfile/instructions.excludePatternsEnabled
var excludePatternsEnabled bool

//go:linkname parentsEnabled github.com/moby/buildkit/frontend/dockerfile/instructions.parentsEnabled
var parentsEnabled bool

func init() {
	excludePatternsEnabled = true
	parentsEnabled = true
}
