package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/strata-dev/strata/store"
)

// Copy copies src to dst between repositories or registries without
// touching the local store: blobs stream from one to the other (o.Jobs at a
// time), and on the same registry they are mounted across repositories
// instead of uploaded. An index is copied whole, with every platform, unless
// o.Platform names the one platform to copy.
func Copy(ctx context.Context, src, dst string, o Options) (*PushResult, error) {
	op := fmt.Sprintf("copy %s %s", src, dst)
	sref, err := o.ParseReference(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	dref, err := o.ParseReference(dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	t, err := o.newTransport()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	desc, err := getManifest(sref, o.remoteOptions(ctx, t))
	if err != nil {
		return nil, wrap(op, err)
	}
	if o.Platform != "" && desc.MediaType.IsIndex() {
		// Only the image for one platform, as an image (not an index).
		plat, err := o.platform()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		child, err := selectPlatform(desc.Manifest, plat)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if desc, err = getManifest(sref.Context().Digest(child.Digest.String()), o.remoteOptions(ctx, t)); err != nil {
			return nil, wrap(op, err)
		}
	}
	wopts := o.remoteOptions(ctx, t)
	var updates chan v1.Update
	done := make(chan struct{})
	if _, quiet := o.progress().(nopProgress); !quiet {
		updates = make(chan v1.Update, 16)
		wopts = append(wopts, remote.WithProgress(updates))
		id := shortID(desc.Digest.Hex)
		go func() {
			defer close(done)
			started := false
			for u := range updates {
				if !started && u.Total > 0 {
					o.progress().Start(id, u.Total)
					started = true
				}
				o.progress().Update(id, u.Complete)
			}
		}()
	} else {
		close(done)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, ierr := desc.ImageIndex()
		if ierr != nil {
			return nil, wrap(op, ierr)
		}
		err = remote.WriteIndex(dref, idx, wopts...)
	case desc.MediaType.IsImage():
		img, ierr := desc.Image()
		if ierr != nil {
			return nil, wrap(op, ierr)
		}
		err = remote.Write(dref, img, wopts...)
	default:
		err = remote.Put(dref, desc, wopts...)
	}
	// go-containerregistry closes updates when it is done; do not hang if it
	// failed before it started reporting.
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	if updates != nil {
		o.progress().Done(shortID(desc.Digest.Hex), "copied")
	}
	return &PushResult{Ref: dref.String(), Digest: desc.Digest, Size: desc.Size}, nil
}

// Tags lists the tags of a repository.
func Tags(ctx context.Context, repo string, o Options) ([]string, error) {
	op := "tags " + repo
	r, err := o.parseRepository(repo)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	t, err := o.newTransport()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	tags, err := remote.List(r, o.remoteOptions(ctx, t)...)
	if err != nil {
		return nil, wrap(op, err)
	}
	return tags, nil
}

// Delete deletes a manifest from a registry. A tag is resolved to its
// digest first (registries delete manifests, and with them every tag that
// points at them). It returns the deleted digest.
func Delete(ctx context.Context, refStr string, o Options) (v1.Hash, error) {
	op := "delete " + refStr
	ref, err := o.ParseReference(refStr)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", op, err)
	}
	t, err := o.newTransport()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", op, err)
	}
	ropts := o.remoteOptions(ctx, t)
	d, ok := ref.(name.Digest)
	if !ok {
		desc, err := remote.Head(ref, ropts...)
		if err != nil {
			return v1.Hash{}, wrap(op, err)
		}
		d = ref.Context().Digest(desc.Digest.String())
	}
	if err := remote.Delete(d, ropts...); err != nil {
		return v1.Hash{}, wrap(op, err)
	}
	return v1.NewHash(d.DigestStr())
}

// InspectRemote describes ref as the registry has it, without pulling
// layers, in the same form as a local image (store.Inspect). From an index
// it describes the image for o.Platform (default this machine's). Errors
// are not prefixed with the operation: inspect's caller does that.
func InspectRemote(ctx context.Context, refStr string, o Options) (*store.Inspection, error) {
	r, err := o.resolveImage(ctx, refStr)
	if err != nil {
		return nil, err
	}
	ref, desc := r.ref, r.desc
	img, err := desc.Image()
	if err != nil {
		return nil, explain(err)
	}
	var names []string
	if tag, ok := ref.(name.Tag); ok {
		names = append(names, store.FullName(tag))
	} else {
		names = append(names, store.FullName(ref.Context().Digest(desc.Digest.String())))
	}
	in, err := store.Inspect(img, names)
	if err != nil {
		return nil, explain(err)
	}
	return in, nil
}
