// Package container keeps container records (a writable snapshot over an
// image plus the merged configuration its process runs with) and implements
// docker's container verbs over them: create, start, run, ps, diff, commit
// and rm.
//
// A container lives in root/containers/<id>/: config.json (the record,
// replaced atomically on every change) and lock. The lock is held (flock, so
// it dies with its holder) by the strata process that is starting, running or
// removing the container: a record that says "running" while nobody holds its
// lock belongs to a strata that was killed, and is shown (and saved) as
// exited. Containers made by Run (create+start in one process) are marked
// transient; a transient container whose lock is free is reaped by the next
// strata that lists or creates containers, so a SIGKILL of `strata run --rm`
// leaves nothing behind for long.
//
// The container's writable layer is the snapshot keyed by its ID; the image
// blobs it runs on are pinned in the store ("container-<id>") while the
// record exists.
package container
