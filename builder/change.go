package builder

// This file belongs to the foundation engineer (strata import --change).

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// changeInstructions are the Dockerfile instructions `docker import --change`
// and `docker commit --change` accept.
var changeInstructions = map[string]bool{
	"cmd": true, "entrypoint": true, "env": true, "expose": true, "label": true,
	"onbuild": true, "user": true, "volume": true, "workdir": true,
}

// ApplyChanges applies Dockerfile instructions (as `docker import --change`
// takes them: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME,
// WORKDIR) to cfg in order, with a Dockerfile's semantics: variables expand
// against cfg's environment, shell forms run through cfg's shell (default
// /bin/sh -c), a relative WORKDIR is relative to the current one, and an
// ENTRYPOINT resets CMD unless one of changes set CMD before it.
func ApplyChanges(cfg *v1.Config, changes []string) error {
	cmdSet := false
	for _, change := range changes {
		if err := applyChange(cfg, change, &cmdSet); err != nil {
			return fmt.Errorf("--change %q: %w", change, err)
		}
	}
	return nil
}

func applyChange(cfg *v1.Config, change string, cmdSet *bool) error {
	if strings.TrimSpace(change) == "" {
		return fmt.Errorf("empty instruction")
	}
	res, err := parser.Parse(strings.NewReader(change))
	if err != nil {
		return err
	}
	if len(res.AST.Children) != 1 {
		return fmt.Errorf("want exactly one instruction, got %d", len(res.AST.Children))
	}
	node := res.AST.Children[0]
	if !changeInstructions[strings.ToLower(node.Value)] {
		return fmt.Errorf("%s is not supported (use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME or WORKDIR)",
			strings.ToUpper(node.Value))
	}
	inst, err := instructions.ParseInstruction(node)
	if err != nil {
		return err
	}
	lex := shell.NewLex(res.EscapeToken)
	expand := func(word string) (string, error) {
		s, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(cfg.Env))
		return s, err
	}
	if ex, ok := inst.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(expand); err != nil {
			return err
		}
	}
	switch c := inst.(type) {
	case *instructions.CmdCommand:
		cfg.Cmd = withShell(cfg, c.ShellDependantCmdLine)
		*cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = withShell(cfg, c.ShellDependantCmdLine)
		if !*cmdSet {
			cfg.Cmd = nil
		}
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.ExposeCommand:
		for _, p := range c.Ports {
			p, err := expand(p)
			if err != nil {
				return err
			}
			ports, err := exposedPorts(p)
			if err != nil {
				return err
			}
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, port := range ports {
				cfg.ExposedPorts[port] = struct{}{}
			}
		}
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.VolumeCommand:
		for _, v := range c.Volumes {
			if v == "" {
				return fmt.Errorf("VOLUME specified can not be an empty string")
			}
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.WorkdirCommand:
		wd := c.Path
		if !path.IsAbs(wd) {
			cur := cfg.WorkingDir
			if cur == "" {
				cur = "/"
			}
			wd = path.Join(cur, wd)
		}
		cfg.WorkingDir = path.Clean(wd)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	default:
		return fmt.Errorf("unsupported instruction %T", inst)
	}
	return nil
}

// withShell turns a shell-form command line into an exec form.
func withShell(cfg *v1.Config, c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string(nil), c.CmdLine...)
	}
	sh := cfg.Shell
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(append([]string(nil), sh...), strings.Join(c.CmdLine, " "))
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// exposedPorts parses PORT[-PORT][/PROTO] as EXPOSE takes it.
func exposedPorts(spec string) ([]string, error) {
	portStr, proto, _ := strings.Cut(spec, "/")
	proto = strings.ToLower(proto)
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid proto %q in EXPOSE %s", proto, spec)
	}
	lo, hi, isRange := strings.Cut(portStr, "-")
	if !isRange {
		hi = lo
	}
	start, err1 := strconv.ParseUint(lo, 10, 16)
	end, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || end < start {
		return nil, fmt.Errorf("invalid port %q in EXPOSE", spec)
	}
	var out []string
	for p := start; p <= end; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}
