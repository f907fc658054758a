// Package snapshot gives containers and builds their filesystems: it unpacks
// each layer once, stacks layers under a writable layer, and turns what a
// container changed into a new OCI layer.
//
// # Vocabulary (after containerd's core/snapshots)
//
// A layer is an immutable OCI layer (v1.Layer, identified by its diffID). A
// stack of layers is identified by its chain ID (OCI image-spec: the chain ID
// of L0 is diffID(L0); of L0..Ln it is sha256(chainID(L0..Ln-1) + " " +
// diffID(Ln))). An active snapshot is a writable filesystem on top of a stack
// of layers, named by a caller-chosen key. Prepare creates it; Diff, Changes
// and Commit read it; Remove deletes it. A snapshot never becomes a parent
// itself: Commit stores its changes as a layer (in the store) and the next
// Prepare names that layer like any other.
//
// # Ownership and ordering
//
//   - Prepare returns mounts; it never mounts anything on the host. The caller
//     (the sandbox, rootfs.Run) passes them to MountAll inside its own private
//     mount namespace, so a SIGKILL of strata never leaves a mount behind.
//   - Diff, Changes and Commit must only be called while nothing is writing to
//     the snapshot (the container has exited); they read the upperdir (overlay)
//     or the container directory (native) directly and need no mount.
//   - CommitRemove (builds) commits and removes in one step; the overlay
//     snapshotter then keeps the upper directory as the new layer's unpacked
//     form instead of extracting the layer again for the next step. Call it
//     only once nothing can write to the snapshot any more.
//   - Remove deletes the snapshot's directories. Calling it for an unknown key
//     is not an error (idempotent). It fails if something is still mounted on
//     the snapshot's directories.
//   - Layer directories under ROOT/snapshots/layers are shared by every
//     snapshot and every strata process; they are written once (unpacked into
//     a temp directory, synced, then renamed into place, so a crash never
//     leaves half a layer) and never modified afterwards. Each layer's
//     content is checked against its diffID while it is unpacked. Concurrent
//     processes preparing the same layer take turns on a per-layer lock: the
//     first unpacks it, the others use it.
//   - The one exception (builds): PutLayer given the layer a step produced
//     before may take over that layer's directory for the step's new layer,
//     only under the exclusive gc.lock and when no active snapshot uses it:
//     the directory is renamed away (a crash leaves a temp directory for
//     Cleanup), patched into exactly what extracting the new layer gives
//     and renamed into place under the new chain ID (see patch.go). The old
//     layer is extracted again if it is ever needed.
//   - Layer directories may share files: PutLayer hard-links a file of
//     another unpacked layer instead of writing it when it is exactly what
//     the entry extracts to (COPY --from a stage, PutOptions.Source). This
//     is safe because no file in a layer directory is ever changed in
//     place: a patch removes a file before it writes a new one. A process
//     that stats such a file sees a link count above one.
//   - Cleanup removes what crashed processes left behind (temp layer
//     directories, snapshots whose Prepare never finished); Prune also
//     removes unpacked layers no active snapshot uses. Both wait for running
//     Prepares (a shared lock); New runs Cleanup itself when no Prepare is
//     running, so a killed strata's leftovers go with the next command. Neither touches active snapshots: their
//     owner (container/, builder/) removes those with Remove.
//
// # Snapshotters
//
// "overlay" stacks the unpacked layers as overlayfs lowerdirs under a fresh
// upperdir/workdir per key, mounted with redirect_dir=off,index=off,
// metacopy=off so that the upperdir alone describes the change. Its diff is
// read straight from the upperdir without walking the lower layers (only the
// sandbox mountpoints and opaque directories are looked up in them): overlay
// whiteouts (0/0 character devices) become ".wh.NAME" and opaque directories
// (trusted.overlay.opaque=y) become ".wh..wh..opq", unless nothing in the
// lower layers is there to hide (overlayfs also marks directories it moves).
//
// "native" copies the flattened lower tree (cached per chain ID) into a fresh
// directory per key and bind-mounts it. The copy breaks hardlinks, as an
// overlayfs copy-up does, so writing one path never changes another in
// either snapshotter. Its diff compares the container directory with the
// lower tree. Directories are tagged with the xattr
// trusted.strata.orig at Prepare, so a directory that was deleted and
// recreated (no tag) becomes opaque, exactly as overlayfs would record it.
// Both snapshotters produce the same layer bytes for the same change (see
// the conformance suite in conformance_test.go and the randomized
// TestRandomChanges). One difference is inherent: overlayfs copies a file up
// for operations that end up changing nothing (chmod to the same mode, a
// hardlink made then removed, an open for writing without a write), and its
// diff carries that unchanged file; the native diff does not. Applying
// either diff gives the same tree.
//
// New(s, "") picks the kind named by STRATA_SNAPSHOTTER, else overlay when an
// overlay can be created on the store's filesystem (probed with a detached
// filesystem from the new mount API, so the probe never attaches anything;
// a success is remembered in ROOT/snapshots/.overlay-ok for the same kernel
// and filesystem), else native.
//
// # Layer tars
//
// Diffs are written in sorted walk order (names sorted byte-wise within each
// directory; a directory's ".wh..wh..opq" right after the directory itself),
// with owners, modes (setuid/setgid/sticky included), xattrs (security.capability
// included; trusted.overlay.* and trusted.strata.* never), symlinks, hardlinks
// (the first path in walk order holds the content, later ones are links),
// device nodes, fifos and empty directories. User and group names are left
// empty; times are truncated to seconds; when SOURCE_DATE_EPOCH is set (the
// environment variable, or WithSourceDateEpoch), later times are clamped to
// it. Whiteout entries are empty regular files, mode 0, owner 0:0, time 0.
//
// # Sandbox mountpoints
//
// The sandbox bind-mounts /etc/hosts, /etc/hostname and /etc/resolv.conf and
// mounts /proc, /sys and /dev. When the image lacks them it must create empty
// mountpoints in the container's filesystem. Diff and Changes leave out such a
// path (see SandboxMountpoints) when it is an empty regular file or an empty
// directory that does not exist in the lower layers, and leave out /etc when it
// holds nothing else and is either new or differs from the lower /etc only in
// its times (creating the mountpoints changed them).
//
// # Extraction
//
// Unpack extracts an untrusted layer tar into a directory and never creates or
// changes anything outside it: every path is resolved inside the directory
// (openat2 RESOLVE_IN_ROOT through filepath-securejoin's pathrs-lite), so ".."
// and absolute names, symlinks pointing out and symlinked parent directories
// all stay inside; the last component is never followed.
package snapshot
