package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/strata-dev/strata/store"
)

// finish assembles the target's image and writes every output. The store
// tags move only after all blobs are durable (store.WriteImage), and only
// when the build succeeded.
func (b *builder) finish(ctx context.Context, target *stage) (*Result, error) {
	img := target.img
	fillHistoryTimes(&img, target.newHist, b.now)
	if len(b.opts.Labels) > 0 {
		if img.Config.Labels == nil {
			img.Config.Labels = map[string]string{}
		}
		for k, v := range b.opts.Labels {
			img.Config.Labels[k] = v
		}
	}
	img.Created = nil
	if b.epoch != nil {
		img.Created = b.epoch
	}
	out, err := assemble(&img, target.layers, nil)
	if err != nil {
		return nil, fmt.Errorf("assembling the image: %w", err)
	}
	res := &Result{Image: out, Tags: b.opts.Tags}
	if res.ID, err = out.ConfigName(); err != nil {
		return nil, err
	}
	if res.Digest, err = out.Digest(); err != nil {
		return nil, err
	}
	v := b.prog.vertex("exporting to image")
	toStore := len(b.opts.Outputs) == 0 || len(b.opts.Tags) > 0
	for _, o := range b.opts.Outputs {
		if o.Type == "image" || o.Type == "registry" {
			toStore = true
		}
	}
	if toStore {
		if err := b.writeStore(ctx, out, res.Digest); err != nil {
			v.fail(err)
			return nil, err
		}
	}
	for _, o := range b.opts.Outputs {
		if err := b.writeOutput(ctx, out, o); err != nil {
			err = fmt.Errorf("output type=%s,dest=%s: %w", o.Type, o.Dest, err)
			v.fail(err)
			return nil, err
		}
	}
	if b.opts.IIDFile != "" {
		if err := os.WriteFile(b.opts.IIDFile, []byte(res.ID.String()), 0o644); err != nil {
			v.fail(err)
			return nil, fmt.Errorf("writing --iidfile: %w", err)
		}
	}
	v.done()
	if err := b.exportCaches(ctx, target); err != nil {
		return nil, err
	}
	push := b.opts.Push
	for _, o := range b.opts.Outputs {
		push = push || o.Type == "registry"
	}
	if push {
		if b.opts.PushImage == nil {
			return nil, errors.New("--push: no registry access")
		}
		if len(b.opts.Tags) == 0 {
			return nil, errors.New("--push needs a name: give -t NAME")
		}
		for _, t := range b.opts.Tags {
			pv := b.prog.vertex("pushing " + t)
			if err := b.opts.PushImage(ctx, out, t); err != nil {
				pv.fail(err)
				return nil, fmt.Errorf("pushing %s: %w", t, err)
			}
			pv.done()
		}
	}
	return res, nil
}

// writeStore stores the image and moves the tags, skipping the write when
// every tag already names this exact image (a fully cached rebuild).
func (b *builder) writeStore(ctx context.Context, img v1.Image, d v1.Hash) error {
	if len(b.opts.Tags) == 0 {
		if rec, err := b.s.Resolve(d.String()); err == nil && rec.Digest == d {
			return nil // already stored
		}
	}
	if len(b.opts.Tags) > 0 {
		same := true
		for _, t := range b.opts.Tags {
			rec, err := b.s.Resolve(t)
			if err != nil || rec.Digest != d {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	if _, err := b.s.WriteImage(ctx, img, b.opts.Tags...); err != nil {
		return fmt.Errorf("writing the image: %w", err)
	}
	return nil
}

func (b *builder) writeOutput(ctx context.Context, img v1.Image, o Output) error {
	switch o.Type {
	case "image", "registry":
		return nil
	case "docker", "oci":
		// as `strata save` writes them: layers compressed (gzip unless
		// compression= says otherwise), named by name= or the first tag
		refName := o.Name
		if refName == "" && len(b.opts.Tags) > 0 {
			refName = b.opts.Tags[0]
		}
		var full string
		if refName != "" {
			t, err := store.ParseTag(refName)
			if err != nil {
				return err
			}
			full = store.FullName(t)
		}
		opts := store.SaveOptions{Format: o.Type, Compression: o.Compression}
		return writeFileOrStdout(o.Dest, func(w io.Writer) error {
			return b.s.WriteArchive(ctx, w, img, full, opts)
		})
	case "tar":
		return writeFileOrStdout(o.Dest, func(w io.Writer) error {
			rc := mutate.Extract(img)
			defer rc.Close()
			_, err := io.Copy(w, rc)
			return err
		})
	case "local":
		if err := os.MkdirAll(o.Dest, 0o755); err != nil {
			return err
		}
		rc := mutate.Extract(img)
		defer rc.Close()
		return extractTar(rc, o.Dest, nil)
	}
	return fmt.Errorf("unknown output type %q", o.Type)
}

// writeFileOrStdout writes to dest through a temp file renamed into place
// (so a failed build never leaves half a file), or to stdout for "-".
func writeFileOrStdout(dest string, write func(io.Writer) error) error {
	if dest == "-" {
		return write(os.Stdout)
	}
	if fi, err := os.Stat(dest); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		// /dev/null, a FIFO: written in place; a rename would replace
		// the device with a plain file.
		f, err := os.OpenFile(dest, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dest), ".strata-out-*")
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), dest)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
