// Package cache decides whether a build step can be skipped: it computes
// instruction cache keys (fields length-prefixed, then SHA-256), keeps the
// on-disk index mapping a key to the layer and history the step produced,
// and hashes build-context files through a stat cache so that a warm rebuild
// reads only metadata.
//
// On-disk layout under DIR (the store's "cache" directory):
//
//	index/KK/KEY   one JSON Entry per cached step, written atomically
//	stat/CTXHASH   the stat cache of one build context directory (binary)
//	mounts/ID      the directories of RUN --mount=type=cache
//
// A key never depends on mtimes; an entry whose layer blob is missing or has
// the wrong size is a miss (the step runs again and the entry is rewritten).
package cache
