// Package cache decides whether a build step can be skipped: it computes
// instruction cache keys (fields length-prefixed, then SHA-256), keeps the
// on-disk index mapping a key to the layer and history time the step
// produced, and hashes build-context files through a stat cache so that a
// warm rebuild reads only metadata.
//
// What a key covers (builder computes them; see builder/stage.go, run.go,
// copystep.go): the parent key (the base image's manifest digest, or the
// previous step), the platform, the instruction after variable expansion,
// and for RUN the argv, the whole environment (ENV and ARGs in scope),
// WORKDIR, USER, network and mounts (a bind mount's content hash, a stage's
// key); for COPY/ADD the destination, flags, and every selected source's
// relative path, mode, link target and content digest (never mtime), after
// .dockerignore and --exclude; for COPY --from the source stage's key or
// image digest. Secrets never enter a key.
//
// On-disk layout under DIR (the store's "cache" directory):
//
//	index/KK/KEY   one JSON Entry per cached step, written atomically
//	stat/CTXHASH   the stat cache of one build context directory (binary:
//	               path, device, inode, size, mtime, ctime, SHA-256)
//	mounts/ID      the directories of RUN --mount=type=cache
//	lineage/KK/L   the layer a step's lineage (its key without the content
//	               of its inputs) produced last: a hint a rerun starts from
//	               (see lineage.go)
//
// An entry whose layer blob changed identity (inode, size, mtime, ctime)
// since it was verified is hashed again; a missing or damaged blob is a miss
// and is removed, so the step reruns and stores it again. Layers the cache
// uses are pinned in the store (pins/buildcache/*) so prune keeps them;
// `strata builder prune` bounds the cache by size and age.
//
// The remote cache (--cache-to/--cache-from) is an OCI image whose config
// lists key → layer entries; see builder/remotecache.go for the format.
package cache
