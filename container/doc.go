// Package container keeps container records (a writable snapshot over an
// image plus the merged configuration its process runs with) and implements
// docker's container verbs over them: create, start, run, stop, ps, diff,
// commit, logs and rm.
//
// A container lives in root/containers/<id>/: config.json (the record,
// replaced atomically on every change), lock, and container.log when it
// was started in the background. The lock is held (flock, so it dies with
// its holder) by the strata process that is creating, running, committing
// or removing the container; the record names the process that runs it. A
// record that says "running" while nobody holds its lock belongs to a
// strata that was killed (its sandbox died with it): it reads as exited
// (137). A container of `run --rm` whose strata died is reaped by the next
// strata that lists (ps) or creates containers, so a SIGKILL leaves nothing
// behind for long.
//
// The writable layer is the snapshot keyed by the container's ID. The image
// blobs a container needs for a later commit are pinned in the store
// ("container-<id>") while its record exists; a `run --rm` container, never
// committed, skips the pin and mounts its overlay "volatile" (no syncs for
// a layer that is thrown away).
package container
