package builder

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parsePorts parses EXPOSE specs (PORT, PORT/PROTO, LOW-HIGH[/PROTO]) into
// "PORT/PROTO" keys as docker's nat.ParsePortSpecs does.
func parsePorts(specs []string) ([]string, error) {
	var out []string
	for _, s := range specs {
		if strings.Contains(s, ":") {
			return nil, fmt.Errorf("invalid containerPort: %s (EXPOSE takes no host part)", s)
		}
		port, proto, _ := strings.Cut(s, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("invalid proto: %s", proto)
		}
		lo, hi, isRange := strings.Cut(port, "-")
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid containerPort: %s", s)
		}
		h := l
		if isRange {
			if h, err = strconv.ParseUint(hi, 10, 16); err != nil || h < l {
				return nil, fmt.Errorf("invalid range specified for container: %s", s)
			}
		}
		for p := l; p <= h; p++ {
			out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
		}
	}
	return out, nil
}

// checkSignal accepts what docker's signal.ParseSignal does: a number or a
// name with or without SIG.
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return fmt.Errorf("invalid signal: %s", s)
		}
		return nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if unix.SignalNum(name) == 0 && !strings.HasPrefix(name, "SIGRTMIN") && !strings.HasPrefix(name, "SIGRTMAX") {
		return fmt.Errorf("invalid signal: %s", s)
	}
	return nil
}
