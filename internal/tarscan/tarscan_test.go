package tarscan

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// randomTar writes n entries of every kind archive/tar's Writer can
// produce: short, prefix-split and long names, sub-second times, xattrs,
// big ids, each format.
func randomTar(t testing.TB, rng *rand.Rand, n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	types := []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("d%d/f%d", rng.Intn(5), i)
		switch rng.Intn(6) {
		case 0:
			name = strings.Repeat("long/", 25+rng.Intn(30)) + name // PAX or GNU long name
		case 1:
			name = strings.Repeat("p", 120) + "/" + name // USTAR prefix
		case 2:
			name = "ünïcode/" + name
		}
		h := tar.Header{Name: name, Typeflag: types[rng.Intn(len(types))], Mode: int64(rng.Intn(0o7777)),
			Uid: rng.Intn(3) * 1000, Gid: rng.Intn(2), ModTime: time.Unix(1500000000+rng.Int63n(1e9), 0)}
		if rng.Intn(5) == 0 {
			h.ModTime = h.ModTime.Add(time.Duration(1 + rng.Intn(1e9-1)))
		}
		if rng.Intn(8) == 0 {
			h.Uid = 3000000 + rng.Intn(1000) // beyond octal: PAX or base-256
		}
		if rng.Intn(6) == 0 {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.a": fmt.Sprint(rng.Intn(100))}
		}
		switch rng.Intn(5) {
		case 0:
			h.Format = tar.FormatGNU
		case 1:
			h.Format = tar.FormatPAX
		case 2:
			h.Format = tar.FormatUSTAR
		}
		var body []byte
		switch h.Typeflag {
		case tar.TypeReg:
			body = bytes.Repeat([]byte{byte('a' + i%26)}, rng.Intn(1500))
			h.Size = int64(len(body))
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = "target" + strings.Repeat("t", rng.Intn(150))
		case tar.TypeChar, tar.TypeBlock:
			h.Devmajor, h.Devminor = int64(rng.Intn(300)), int64(rng.Intn(300))
		}
		if err := tw.WriteHeader(&h); err != nil {
			// the format cannot hold this header: write it in any
			h.Format = tar.FormatUnknown
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type seen struct {
	name string
	link string
	typ  byte
	size int64
	data string
}

func readStd(t testing.TB, b []byte) []seen {
	var out []seen
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, seen{h.Name, h.Linkname, h.Typeflag, h.Size, string(d)})
	}
}

// readScan reads b with a Scanner, checking that each entry's raw blocks
// and data are where it says.
func readScan(t testing.TB, b []byte, r io.Reader, bufSize int, readData bool) ([]seen, error) {
	var out []seen
	s := NewScanner(r, bufSize)
	for {
		e, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if !bytes.Equal(e.Raw, b[e.Start:e.Start+int64(len(e.Raw))]) {
			t.Fatalf("%s: raw header blocks differ from the stream at %d", e.Name, e.Start)
		}
		var d []byte
		if readData {
			if d, err = io.ReadAll(s); err != nil {
				return out, err
			}
		} else {
			end := e.Start + int64(len(e.Raw)) + e.DataSize
			if end > int64(len(b)) {
				return out, io.ErrUnexpectedEOF
			}
			d = b[e.Start+int64(len(e.Raw)) : end]
		}
		out = append(out, seen{e.Name, e.Linkname, e.Typeflag, e.Size, string(d)})
	}
}

// TestScannerMatchesArchiveTar compares a Scanner with archive/tar over
// random streams, with small and big buffers, reading or skipping data,
// from memory and from a file (skips by Seek).
func TestScannerMatchesArchiveTar(t *testing.T) {
	dir := t.TempDir()
	for seed := 0; seed < 60; seed++ {
		rng := rand.New(rand.NewSource(int64(seed)))
		b := randomTar(t, rng, 1+rng.Intn(80))
		want := readStd(t, b)
		f := filepath.Join(dir, fmt.Sprint(seed))
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, bufSize := range []int{4096, 1 << 20} {
			for _, readData := range []bool{true, false} {
				got, err := readScan(t, b, bytes.NewReader(b), bufSize, readData)
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				compare(t, fmt.Sprintf("seed %d buf %d", seed, bufSize), got, want)
				fh, err := os.Open(f)
				if err != nil {
					t.Fatal(err)
				}
				got, err = readScan(t, b, fh, bufSize, readData)
				fh.Close()
				if err != nil {
					t.Fatalf("seed %d (file): %v", seed, err)
				}
				compare(t, fmt.Sprintf("seed %d buf %d file", seed, bufSize), got, want)
			}
		}
	}
}

func compare(t *testing.T, what string, got, want []seen) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: entry %d:\n got  %q %q %q %d (%d bytes)\n want %q %q %q %d (%d bytes)", what, i,
				got[i].name, got[i].link, got[i].typ, got[i].size, len(got[i].data), want[i].name, want[i].link, want[i].typ, want[i].size, len(want[i].data))
		}
	}
}

// TestScannerRefuses lists what a Scanner reports as unsupported or broken.
func TestScannerRefuses(t *testing.T) {
	mk := func(hs ...tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hs {
			h := h
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			tw.Write(make([]byte, h.Size))
		}
		tw.Close()
		return buf.Bytes()
	}
	global := mk(tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "x"}})
	ok := mk(tar.Header{Name: "a", Typeflag: tar.TypeReg, Size: 3})
	// old GNU sparse: the same header with type 'S' and its checksum redone
	sparse := append([]byte(nil), ok...)
	sparse[156] = tar.TypeGNUSparse
	copy(sparse[257:265], "ustar  \x00")
	var sum int64
	for i, c := range sparse[:512] {
		if 148 <= i && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	copy(sparse[148:156], fmt.Sprintf("%06o\x00 ", sum))
	badsum := append([]byte(nil), ok...)
	badsum[0] = 'b'
	for name, b := range map[string][]byte{
		"global header": global, "sparse": sparse, "bad checksum": badsum,
		"no end marker": ok[:1024], "zero then data": append(make([]byte, 512), ok...),
	} {
		_, err := readScan(t, b, bytes.NewReader(b), 4096, true)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if name != "no end marker" && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// FuzzScanner checks that whatever a Scanner accepts, archive/tar reads the
// same way.
func FuzzScanner(f *testing.F) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 5; i++ {
		f.Add(randomTar(f, rng, 3))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readScan(t, b, bytes.NewReader(b), 4096, true)
		if err != nil {
			return
		}
		tr := tar.NewReader(bytes.NewReader(b))
		for i, g := range got {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("entry %d: scanner read %q, archive/tar: %v", i, g.name, err)
			}
			d, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("entry %d: scanner read %q, archive/tar: %v", i, g.name, err)
			}
			if w := (seen{h.Name, h.Linkname, h.Typeflag, h.Size, string(d)}); w != g {
				t.Fatalf("entry %d: scanner %q %q %d, archive/tar %q %q %d", i, g.name, g.typ, g.size, w.name, w.typ, w.size)
			}
		}
	})
}

// TestChecksums compares the word-at-a-time checksums with archive/tar's
// byte loop, and octal with strconv.
func TestChecksums(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	b := make([]byte, blockSize)
	for i := 0; i < 2000; i++ {
		for j := range b {
			switch i % 3 {
			case 0:
				b[j] = byte(rng.Intn(256))
			case 1:
				b[j] = 0xff
			default:
				b[j] = byte(rng.Intn(128))
			}
		}
		var wu, ws int64
		for j, c := range b {
			if 148 <= j && j < 156 {
				c = ' '
			}
			wu += int64(c)
			ws += int64(int8(c))
		}
		if u, s := checksums(b); u != wu || s != ws {
			t.Fatalf("block %d: checksums %d %d, want %d %d", i, u, s, wu, ws)
		}
	}
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0000644\x00", 0o644, true}, {"  17 \x00", 0o17, true}, {"\x00\x00", 0, true}, {"", 0, true},
		{"0008", 0, false}, {"1 2", 0, false}, {"+7", 0, false}, {"777777777777", 0o777777777777, true},
		{"\x80\x00\x00\x01", 0, false},
	} {
		if got, ok := octal([]byte(c.in)); got != c.want || ok != c.ok {
			t.Errorf("octal(%q) = %d %v, want %d %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
