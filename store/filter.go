package store

import (
	"strings"
)

// FilterImages keeps the records with a name matching pattern, as `docker
// images REPOSITORY[:TAG]` does: without a tag, every tag of the repository
// matches. A kept record's Names are narrowed to the matching ones.
func FilterImages(recs []Record, pattern string) ([]Record, error) {
	r, err := ParseReference(pattern)
	if err != nil {
		return nil, err
	}
	full := FullName(r)
	repoOnly := !hasTag(pattern)
	repo := full[:strings.LastIndexAny(full, ":@")]
	var out []Record
	for _, rec := range recs {
		var names []string
		for _, n := range rec.Names {
			if n == full || repoOnly && n[:strings.LastIndexAny(n, ":@")] == repo {
				names = append(names, n)
			}
		}
		if names != nil {
			rec.Names = names
			out = append(out, rec)
		}
	}
	return out, nil
}

// hasTag reports whether a reference text names a tag or digest.
func hasTag(ref string) bool {
	if strings.Contains(ref, "@") {
		return true
	}
	i := strings.LastIndex(ref, ":")
	return i > strings.LastIndex(ref, "/")
}
