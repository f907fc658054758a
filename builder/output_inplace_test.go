package builder

import (
	"io"
	"os"
	"testing"
)

// An output to /dev/null writes to it, never renames a file over it.
func TestWriteFileOrStdoutDevNull(t *testing.T) {
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Skip("/dev/null is not a character device here")
	}
	err := writeFileOrStdout(os.DevNull, func(w io.Writer) error {
		_, err := io.WriteString(w, "discarded")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null after the output: %v %v", fi.Mode(), err)
	}
}
