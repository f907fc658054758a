// Package cache computes instruction cache keys, keeps the cache index, hashes COPY sources and imports/exports remote cache.
package cache
