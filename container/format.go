package container

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	units "github.com/docker/go-units"
)

// Command is the process as `ps` shows it: quoted, and with trunc cut to
// 20 characters with an ellipsis, as docker does.
func (c *Container) Command(trunc bool) string {
	s := strings.Join(append([]string{c.Path}, c.Args...), " ")
	if trunc && utf8.RuneCountInString(s) > 20 {
		s = string([]rune(s)[:19]) + "…"
	}
	return strconv.Quote(s)
}

// StatusText is the STATUS column of ps: "Created", "Up 5 seconds",
// "Exited (0) 3 minutes ago".
func (c *Container) StatusText(now time.Time) string {
	switch c.State.Status {
	case Running:
		return "Up " + units.HumanDuration(now.Sub(c.State.StartedAt))
	case Exited:
		return fmt.Sprintf("Exited (%d) %s", c.State.ExitCode, Ago(now, c.State.FinishedAt))
	default:
		return "Created"
	}
}

// Ago is a time as docker prints it relative to now ("2 minutes ago").
func Ago(now, t time.Time) string { return units.HumanDuration(now.Sub(t)) + " ago" }
