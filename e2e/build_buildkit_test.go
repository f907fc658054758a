package e2e

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuildMatchesBuildKit builds the same Dockerfiles with strata and with
// a running buildkitd (BUILDKIT_HOST; BENCH_REGISTRY=host:port holding
// bbase, as for ../shared/bench/run.sh) and compares the flattened
// filesystems (path, type, mode, owner, content, link target) and the
// config fields. Skipped when no buildkitd is available.
func TestBuildMatchesBuildKit(t *testing.T) {
	requireRoot(t)
	host, reg := os.Getenv("BUILDKIT_HOST"), os.Getenv("BENCH_REGISTRY")
	if host == "" || reg == "" {
		t.Skip("BUILDKIT_HOST and BENCH_REGISTRY not set")
	}
	if _, err := exec.LookPath("buildctl"); err != nil {
		t.Skip("no buildctl")
	}
	e := withBase(t)
	cases := map[string]map[string]string{
		"config": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
ENV A=1 B="two words"
WORKDIR /app
WORKDIR sub
USER app
EXPOSE 80 53/udp
VOLUME /data
LABEL l1=v1
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=5s CMD true
ENTRYPOINT ["/bin/echo"]
ONBUILD RUN true
`},
		"cmd-after-entrypoint": {"Dockerfile": "ARG BASE=bbase\nFROM $BASE\nCMD [\"a\"]\nENTRYPOINT [\"/bin/echo\"]\nCMD [\"b\"]\n"},
		"copy": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
COPY a.txt /dst/
COPY d /dcont
COPY a.txt b.txt /multi/
COPY --chown=app a.txt /o/byname
COPY --chown=7:8 d /o/byid/
COPY --chmod=0751 a.txt /o/mode
WORKDIR /w
COPY *.txt sub/
COPY l ./
RUN mkdir -p /r/x && echo hi > /r/x/f && ln -s f /r/x/l && rm -rf /tmp
`, "a.txt": "A", "b.txt": "B", "d/x": "X", "d/sub/y": "Y", "l/link": "->a.txt"},
		"mounts-heredoc-ignore": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN --mount=type=cache,target=/cache --mount=type=tmpfs,target=/scratch --mount=type=bind,source=in,target=/in sh -c 'cp /in/f /copied; echo x > /scratch/x'
RUN <<EOT
echo heredoc > /heredoc
EOT
COPY <<EOF /here.txt
hello
EOF
COPY . /ctx/
ADD arch.tar /x/
WORKDIR /made/by/workdir
USER app
WORKDIR /as/app
`, "in/f": "F", ".dockerignore": "**/*.tmp\nsecret*\n!secret-ok\n", "a.txt": "A", "x/y.tmp": "T", "secret1": "S", "secret-ok": "O"},
		"multistage": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS one
RUN mkdir /out && echo 1 > /out/f && chown 1000:1000 /out/f && chmod 600 /out/f
FROM scratch
COPY --from=one /out /o
COPY --from=one /out/f /f
`},
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			e := &env{t: t, Root: e.Root}
			ctx := bldContext(t, cases[name])
			if name == "mounts-heredoc-ignore" {
				out, err := exec.Command("tar", "-C", ctx, "-cf", filepath.Join(ctx, "arch.tar"), "in").CombinedOutput()
				if err != nil {
					t.Fatalf("tar: %v %s", err, out)
				}
			}
			sTree, sCfg := bldBuild(t, e, ctx, "cmp-"+name)
			dt := filepath.Join(t.TempDir(), "bk.tar")
			out, err := exec.Command("buildctl", "build", "--frontend", "dockerfile.v0", "--local", "context="+ctx,
				"--local", "dockerfile="+ctx, "--opt", "build-arg:BASE="+reg+"/bbase",
				"--output", "type=docker,name=cmp,dest="+dt).CombinedOutput()
			if err != nil {
				t.Fatalf("buildctl: %v\n%s", err, out)
			}
			img, err := tarball.ImageFromPath(dt, nil)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := img.RawConfigFile()
			var bCfg bldConfig
			json.Unmarshal(raw, &bCfg)
			ft := filepath.Join(t.TempDir(), "flat.tar")
			f, _ := os.Create(ft)
			rc := mutate.Extract(img)
			io.Copy(f, rc)
			rc.Close()
			f.Close()
			bTree := bldTree(t, ft)
			if !reflect.DeepEqual(sCfg.Config, bCfg.Config) {
				sj, _ := json.MarshalIndent(sCfg.Config, "", " ")
				bj, _ := json.MarshalIndent(bCfg.Config, "", " ")
				t.Errorf("config differs:\nstrata:   %s\nbuildkit: %s", sj, bj)
			}
			var diffs []string
			for p, b := range bTree {
				s, ok := sTree[p]
				if !ok {
					diffs = append(diffs, "only in buildkit: "+p)
					continue
				}
				if s != b {
					diffs = append(diffs, "differs: "+p+": strata "+fmtEntry(s)+" buildkit "+fmtEntry(b))
				}
			}
			for p := range sTree {
				if _, ok := bTree[p]; !ok {
					diffs = append(diffs, "only in strata: "+p)
				}
			}
			sort.Strings(diffs)
			if len(diffs) > 0 {
				t.Errorf("filesystems differ:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

func fmtEntry(f bldFile) string {
	b, _ := json.Marshal(f)
	return string(b)
}
