// Package builder runs Dockerfile builds with BuildKit's semantics and no
// daemon: it parses the Dockerfile with BuildKit's own parser, resolves the
// stage graph (only the stages the target needs; independent stages in
// parallel), applies every instruction to the image config exactly as
// BuildKit's dockerfile2llb does, and produces one layer per COPY, ADD, RUN
// and WORKDIR.
//
// COPY and ADD never start a container: the layer tar is written directly
// from the build context (or, for --from, read in place from the source
// stage's layer blobs) against a metadata view of the destination's layers
// (fsView: existing directories, owners, symlinks, /etc/passwd). RUN runs in
// the sandbox (rootfs.Run) over a snapshot (snapshot.Prepare) and its layer
// is the snapshot's diff (snapshot.Commit).
//
// A COPY that reruns because some of its sources changed starts from the
// layer the same COPY produced last (cache.Index.Previous, by the step's
// key without the content of its sources): unchanged files' content is
// read from that layer's blob, each checked against the file's digest
// (reuse.go), and snapshot.PutLayer patches that layer's unpacked directory
// into the new layer's instead of extracting it whole for the next RUN.
//
// Every layer step has a cache key (package cache); a hit reuses the layer
// and its history time, so a fully cached rebuild yields the same image.
//
// Files: parse.go (Dockerfile, ARG scopes), build.go (graph, context,
// images), stage.go (instructions, config, cache lookups), copy.go and
// copystep.go (COPY/ADD), reuse.go (content from a COPY's previous
// layer), context.go (build context, .dockerignore), fsview.go (layer
// metadata), run.go (RUN, mounts), output.go (store, oci, docker, local,
// tar, push), remotecache.go (--cache-to/--cache-from and its format),
// progress.go (plain, tty, json).
package builder
