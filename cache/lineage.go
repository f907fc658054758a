package cache

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// The lineage of a step is what its key holds except the content of its
// inputs: "COPY src /src over this parent, with these flags". When a step
// misses because some of its inputs changed, the layer the same lineage
// produced last is a good place to start from: files that did not change
// can be taken from it, and its unpacked directory can be patched instead
// of extracting the new layer whole.
//
// A lineage record is only a hint. It names a layer by diffID; whoever uses
// it checks the content it takes (builder: each file's digest; snapshot:
// the previous blob's digest and every entry byte for byte), so a stale,
// missing or wrong record costs time, never correctness. Records are
// written atomically (temp file, rename), last writer wins:
//
//	lineage/KK/LINEAGE   the diffID ("sha256:HEX") the lineage produced last

// Previous returns the diffID the lineage last produced, if recorded.
func (i *Index) Previous(lineage string) (string, bool) {
	if len(lineage) < 2 {
		return "", false
	}
	b, err := os.ReadFile(i.lineagePath(lineage))
	if err != nil {
		return "", false
	}
	d := strings.TrimSpace(string(b))
	if !validDigest(d) {
		return "", false
	}
	return d, true
}

// SetPrevious records diffID as what the lineage produced last.
func (i *Index) SetPrevious(lineage, diffID string) error {
	if len(lineage) < 2 || !validDigest(diffID) {
		return errors.New("recording a step's lineage: invalid key or digest")
	}
	if d, ok := i.Previous(lineage); ok && d == diffID {
		return nil
	}
	return writeAtomic(i.lineagePath(lineage), []byte(diffID+"\n"))
}

func (i *Index) lineagePath(lineage string) string {
	return filepath.Join(i.dir, "lineage", lineage[:2], lineage)
}

// pruneLineage forgets the lineages whose layer is not in keep (by
// diffID); with keep nil, every lineage.
func (i *Index) pruneLineage(keep map[string]bool) {
	root := filepath.Join(i.dir, "lineage")
	dirs, _ := os.ReadDir(root)
	for _, d := range dirs {
		files, _ := os.ReadDir(filepath.Join(root, d.Name()))
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".tmp-") {
				continue // being written
			}
			p := filepath.Join(root, d.Name(), f.Name())
			if keep != nil {
				if id, ok := i.Previous(f.Name()); ok && keep[id] {
					continue
				}
			}
			os.Remove(p)
		}
	}
}

func validDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
