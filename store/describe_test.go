package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func TestHistory(t *testing.T) {
	s := openTemp(t)
	t0 := time.Unix(1000, 0).UTC()
	img := empty.Image
	add := func(content string, h v1.History) {
		t.Helper()
		if h.EmptyLayer {
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.History = append(cf.History, h)
			img, _ = mutate.ConfigFile(img, cf)
			return
		}
		l, err := s.PutLayer(context.Background(), bytes.NewReader(tarOf(t, map[string]string{"f": content}, "f")))
		if err != nil {
			t.Fatal(err)
		}
		img, _ = mutate.Append(img, mutate.Addendum{Layer: l, History: h})
	}
	add("base", v1.History{Created: v1.Time{Time: t0}, Comment: "Imported from -"})
	add("", v1.History{Created: v1.Time{Time: t0.Add(time.Hour)}, CreatedBy: "ENV A=b", EmptyLayer: true})
	add("more content", v1.History{Created: v1.Time{Time: t0.Add(2 * time.Hour)}, CreatedBy: "RUN make"})
	rows, err := History(img)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()
	got := ""
	for _, r := range rows {
		got += fmt.Sprintf("%s|%d|%s|%d|%s|%v\n", r.ID, r.Created.Unix(), r.CreatedBy, r.Size, r.Comment, r.EmptyLayer)
	}
	want := id.String() + "|8200|RUN make|2048||false\n" +
		"<missing>|4600|ENV A=b|0||true\n" +
		"<missing>|1000||2048|Imported from -|false\n"
	if got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
}
