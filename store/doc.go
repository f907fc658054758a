// Package store is strata's local content-addressed image store: an OCI image
// layout on disk (skopeo, umoci and crane read it as it is) plus the records,
// tags and locks strata keeps beside it.
//
// On-disk layout under Root:
//
//	oci-layout, index.json   the OCI layout; index.json lists one manifest
//	                         descriptor per image name (annotation
//	                         org.opencontainers.image.ref.name holds the full
//	                         docker reference) and untagged images without it
//	blobs/sha256/HEX         content, visible only once its digest is verified
//	ingest/                  blobs being written (temp files, each flock'ed by
//	                         its writer; Prune removes those nobody holds)
//	pins/NAME                extra GC roots (one digest per line) other
//	                         packages keep: build cache, containers (Pin);
//	                         NAME is %-escaped into one file name
//	compressed/ALGO/sha256-HEX  the digest of the ALGO (gzip, zstd) blob made
//	                         from the uncompressed layer with diffID sha256:HEX
//	lock, index.lock         flock(2) files: writers hold lock shared, Prune
//	                         holds it exclusive; index.lock guards index.json
//
// Local images keep their layers uncompressed (media type
// application/vnd.oci.image.layer.v1.tar, digest = diffID); pulled images keep
// their blobs as the registry served them so their manifest digest stays the
// same. Compressed copies are made on demand by CompressedImage (for save and
// push) and cached; Prune keeps them as long as their layer is reachable.
//
// Besides the records, the package holds what moves images in and out of the
// store as files: Import (a rootfs tarball, checked as it streams by
// CheckTar), Save and Load (docker and OCI archives; Load takes hostile input
// and stores nothing unless the whole archive checks out), Export/Flatten
// (the merged root filesystem), and Prune and Fsck.
//
// Crash safety: every file is written to a temp file in the same filesystem,
// fsynced and renamed; a blob is renamed into blobs/ only after its digest was
// checked; index.json (the tags) is rewritten last, after every blob an image
// needs is durable. A SIGKILL at any point leaves either the old or the new
// index and, at worst, unreferenced blobs or temp files that Prune removes.
package store
