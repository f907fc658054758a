// Command mkimage writes the registry benchmark's image as an OCI image
// layout: LAYERS gzip layers of SIZE bytes each (one file per layer whose
// content is half random, half zeros, so it compresses about 2:1 as real
// layers do). Usage: mkimage DIR LAYERS SIZE [STRATA_ROOT NAME]
//
// With STRATA_ROOT and NAME the same layers are also stored uncompressed in
// strata's store as the local image NAME (what import or a build makes).
package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-dev/strata/store"
)

func main() {
	if len(os.Args) != 4 && len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: mkimage DIR LAYERS SIZE [STRATA_ROOT NAME]")
		os.Exit(2)
	}
	var root, ref string
	if len(os.Args) == 6 {
		root, ref = os.Args[4], os.Args[5]
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], root, ref); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(dir, ls, ss, root, ref string) error {
	n, err := strconv.Atoi(ls)
	if err != nil {
		return err
	}
	size, err := strconv.ParseInt(ss, 10, 64)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	local := img
	var s *store.Store
	if root != "" {
		if s, err = store.Open(root); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(tmp, fmt.Sprintf("layer%d.tar", i))
		if err := writeLayerTar(p, i, size); err != nil {
			return err
		}
		if s != nil {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			sl, err := s.PutLayer(context.Background(), f)
			f.Close()
			if err != nil {
				return err
			}
			if local, err = mutate.Append(local, mutate.Addendum{Layer: sl, MediaType: types.OCIUncompressedLayer}); err != nil {
				return err
			}
		}
		l, err := tarball.LayerFromFile(p, tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if s != nil {
		if local, err = mutate.ConfigFile(local, cf); err != nil {
			return err
		}
		if _, err := s.WriteImage(context.Background(), local, ref); err != nil {
			return err
		}
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return lp.AppendImage(img)
}

// writeLayerTar writes a tar holding one file of about size bytes.
func writeLayerTar(path string, seed int, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/blob%d", seed), Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	r := rand.New(rand.NewSource(int64(seed) + 1))
	block := make([]byte, 64<<10)
	for left := size; left > 0; {
		r.Read(block[:len(block)/2])
		clear(block[len(block)/2:])
		k := int64(len(block))
		if k > left {
			k = left
		}
		if _, err := tw.Write(block[:k]); err != nil {
			return err
		}
		left -= k
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}
