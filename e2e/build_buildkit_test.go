package e2e

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
		"args-env": {"Dockerfile": `ARG BASE=bbase
ARG GLOBAL=g1
FROM $BASE
ARG GLOBAL
ARG LOCAL=l1
ARG TARGETARCH TARGETOS
ENV E1=$GLOBAL-$LOCAL E2=${LOCAL:-x} E3=${UNSET:-/def} E4=${LOCAL:+set} E5='$LOCAL'
RUN echo "$TARGETOS/$TARGETARCH $GLOBAL $LOCAL $E1 $E5" > /args
LABEL from.arg=$LOCAL "multi word"="a b"
EXPOSE ${PORT:-8080}/tcp 9000-9001
WORKDIR $E3
WORKDIR rel/$LOCAL
CMD echo shell form
`},
		"user-workdir": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
USER 1000:1000
WORKDIR /home/u
COPY a.txt .
RUN touch made-by-user
USER app
WORKDIR /app-dir
COPY --chown=app:app d sub/
USER root
ENTRYPOINT echo entry
`, "a.txt": "A", "d/x": "X"},
		"copy-edge": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
COPY --link a.txt /linked/
COPY --link d /linked-dir
ADD --chmod=0640 a.txt /added
ADD arch.tar.gz /gz/
RUN mkdir -p /existing/keep && echo k > /existing/keep/k
COPY d/ /existing/
RUN mkdir /target && ln -s /target /sym
COPY a.txt /sym/
COPY --chown=1:2 --chmod=755 d /ch/
COPY l* /links/
COPY d/sub/y /newdir/renamed
COPY ["a.txt", "sp ace.txt", "/json/"]
`, "a.txt": "A", "sp ace.txt": "S", "d/x": "X", "d/sub/y": "Y", "l1": "->a.txt", "l2": "->d/x", "l3": "->/d/sub"},
		"empty-wildcard": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS s
RUN mkdir /out
FROM $BASE
COPY *.nomatch /t/
COPY *.tmp a.txt /t2/
COPY --from=s /out/*.x /t3/
`, "a.txt": "A", "x.tmp": "T", ".dockerignore": "*.tmp\n"},
		"misc": {"Dockerfile": "# escape=`\n" + `ARG BASE=bbase
FROM $BASE AS zero
RUN echo zero > /z
FROM $BASE
ENV PATH=/opt/bin:$PATH ` + "`" + `
    MULTI=one
ARG TARGETPLATFORM
ARG BUILDPLATFORM
ENV TP=$TARGETPLATFORM BP=$BUILDPLATFORM
COPY --from=0 /z /from-index
COPY --from=REGISTRY/bbase /bin/busybox /from-image
VOLUME ["/vol"]
RUN mkdir -p /vol && echo inside > /vol/f && echo outside > /nv
RUN <<EOT sh -x
echo shebang > /hd
EOT
COPY <<EOF /etc/multi.conf
line $MULTI
EOF
COPY <<"EOF" /etc/quoted.conf
line $MULTI
EOF
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=4 CMD ["/bin/true"]
LABEL a=1
LABEL a=2 b="x y"
USER 4242
WORKDIR /owned-by-4242
RUN touch mine
`},
		"onbuild": {"Dockerfile": `FROM REGISTRY/e2e-onbuild-parent:1
RUN ls /app > /listing
`, "a.txt": "A"},
		"secrets": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len && stat -c '%n %a %u:%g' / /run /run/secrets /run/secrets/tok > /run-listing
RUN --mount=type=secret,id=tok,target=/etc/custom,mode=0400 stat -c '%a %s' /etc/custom > /custom-stat
RUN --mount=type=secret,id=envtok,env=TOK sh -c 'echo -n "$TOK" | wc -c > /envlen'
RUN --mount=type=secret,id=missing,required=false test ! -e /run/secrets/missing && echo ok > /optional
`},
		"semantics": {"Dockerfile": `ARG BASE=bbase
ARG GLOBAL_ONLY=g
FROM $BASE AS Builder
ARG A=1
ARG B=${A}2
RUN echo "$A $B [$GLOBAL_ONLY]" > /ab
WORKDIR rel
RUN pwd > /pwd
FROM scratch AS empty
WORKDIR /in/scratch
COPY --from=builder /ab /pwd ./
FROM $BASE
ENV legacy value with spaces
ENV K1=v1 K2="v 2" K3=v\ 3
EXPOSE 80/TCP 443/udp
LABEL "quoted key"="quoted \"value\"" plain=x
USER app:app
CMD []
ENTRYPOINT ["/bin/true"]
ENTRYPOINT []
HEALTHCHECK CMD wget -q localhost || exit 1
COPY --from=empty / /copied-scratch/
`},
		"context-edge": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
COPY modes /modes
COPY emptydir /emptydir
COPY uni /uni
COPY hl /hl
ADD tars/a.tar.xz /xz/
ADD tars/a.tar.bz2 /bz2/
ADD tars/a.tar.zst /zst/
ADD tars/p.gz /gz/
COPY . /all/
`, ".dockerignore": "# comment\n**/*.log\n!keep.log\nignored-dir\n!ignored-dir/back\n/rooted\n",
			"x.log": "x", "sub/y.log": "y", "keep.log": "k", "ignored-dir/a": "a", "ignored-dir/back": "b", "rooted": "r", "sub/rooted": "sr"},
		"run-mounts": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS tools
RUN mkdir -p /opt/t && echo tool > /opt/t/bin && chmod 755 /opt/t/bin
WORKDIR /inherited
ENV STAGE_ENV=from-tools
FROM tools AS child
RUN pwd > /child-pwd && echo "$STAGE_ENV" > /child-env
FROM $BASE
RUN --mount=type=bind,from=tools,source=/opt/t,target=/mnt/t cp /mnt/t/bin /copied-from-stage
RUN --mount=type=bind,target=/ctx,rw echo scribble > /ctx/new && cat /ctx/f > /from-rw-bind
RUN --mount=type=bind,source=f,target=/one-file cat /one-file > /from-file-bind
RUN --mount=type=cache,target=/c,id=shared,uid=1000,gid=1000,mode=0750 stat -c '%a %u:%g' /c > /cache-stat && touch /c/x
RUN --mount=type=cache,target=/c,id=shared ls /c > /cache-listing
RUN --mount=type=tmpfs,target=/t,size=1m mount | grep ' /t ' | cut -d' ' -f5 > /tmpfs-type
RUN --mount=type=cache,target=/var/cache/x,sharing=locked echo > /var/cache/x/y && ls -ld /var/cache | cut -c1-10 > /cache-parent
COPY --from=child /child-pwd /child-env /
`, "f": "file content"},
		"target": {"Dockerfile": `ARG BASE=bbase
ARG V=global
FROM $BASE AS base
ARG V
RUN echo "base $V" > /base
FROM base AS picked
ARG V=stage-default
LABEL v=$V
RUN echo "picked $V" > /picked
FROM base AS after
RUN echo after > /after
`},
		"fs-changes": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN mkdir -p /d/keep /d/todir /x && echo 1 > /d/file && echo 2 > /d/tofile-dir/f 2>/dev/null || true
RUN mkdir -p /d/tofile && echo f > /d/tofile/inner && ln -s /d/keep /d/link && echo h > /d/hl-src && echo r > /d/recreate
RUN chmod 700 /d/keep && chown 1000:1000 /d/file && chmod 640 /d/file
RUN rm -rf /d/tofile && echo now-a-file > /d/tofile && rm /d/link && mkdir /d/link && echo in > /d/link/f
RUN ln /d/hl-src /d/hl-dst && rm /d/recreate && echo r2 > /d/recreate && touch -d @1700000000 /etc/group
RUN mkfifo /d/fifo && mknod /d/null c 1 3 && dd if=/dev/zero of=/d/sparse bs=1 count=1 seek=1048575 2>/dev/null
RUN p=/d/$(printf 'n%.0s' $(seq 1 120)) && mkdir -p $p/$(printf 'm%.0s' $(seq 1 120)) && echo deep > $p/$(printf 'm%.0s' $(seq 1 120))/$(printf 'f%.0s' $(seq 1 200))
RUN echo x > "/d/$(printf 'caf\351')" && ln -s "$(printf 'tgt\351')" /d/latin-link
`},
		"dir-dest": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS owned
RUN mkdir -p /out/sub && chown -R 1000:1000 /out && chmod 700 /out && echo o > /out/sub/f
FROM $BASE
RUN mkdir -p /e && chmod 711 /e
COPY --chown=7:7 d /e/
COPY --chmod=0750 d /m/
COPY d /e3/sub/deeper/
COPY --chown=7:7 d /e2/
COPY --from=owned /out /from-stage/
COPY --from=REGISTRY/bbase /root /from-image/
`},
		"proxy-env": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN echo "[$HTTP_PROXY] [$no_proxy] [$HTTPS_PROXY]" > /proxy
ARG no_proxy
RUN echo "[$no_proxy]" > /declared
`},
		"expansion": {"Dockerfile": `ARG BASE=bbase
FROM --platform=$BUILDPLATFORM $BASE
ARG NOVAL
ARG EMPTY=
ARG BUILDOS BUILDARCH TARGETVARIANT TARGETPLATFORM
ENV A=1
ENV A=2 B=$A C=${A}x
ENV SIG=SIGUSR1 PORT=7000 DIR=/from/env WHO=1234
RUN (env | grep -E '^(NOVAL|EMPTY)=' || echo none) > /args && echo "$BUILDOS/$BUILDARCH [$TARGETVARIANT] $TARGETPLATFORM" > /plat
STOPSIGNAL $SIG
EXPOSE $PORT/udp
WORKDIR $DIR/$A
USER $WHO:$A
LABEL multi="line one \
line two" ref=$B
`},
		"heredocs": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
ENV NAME=world
RUN <<EOF
#!/bin/sh -e
echo "shebang $NAME $0" > /shebang
EOF
RUN <<EOF
echo "plain $NAME" > /plain
echo second line >> /plain
EOF
RUN cat <<EOF > /redirect
via cat $NAME
EOF
RUN <<-EOF
	echo "tabs stripped" > /tabs
	EOF
RUN <<A sh && <<B sh
echo a > /a
A
echo b > /b
B
COPY <<one <<two /multi/
first
one
second
two
COPY --chmod=0755 <<EOF /script.sh
#!/bin/sh
echo "$NAME"
EOF
`},
		"link-edge": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN mkdir /target && ln -s /target /sym && mkdir -m 700 /private && echo old > /private/f
COPY --link a.txt /sym/
COPY --link a.txt /private/
COPY --link --chown=5:5 d /private/d/
COPY --link d /new/deep/
WORKDIR /w
COPY --link a.txt rel/
`, "a.txt": "A", "d/x": "X"},
		"users": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS src
RUN mkdir /out && echo s > /out/f
FROM $BASE
RUN echo "bob:x:2000:2000::/home/bob:/bin/sh" >> /etc/passwd && echo "bob:x:2000:" >> /etc/group && echo "team:x:3000:bob" >> /etc/group && mkdir -p /home/bob
USER bob
RUN id > /tmp/id-bob
USER bob:team
RUN id > /tmp/id-bob-team && touch /tmp/made-by-bob-team
USER root
COPY --from=src --chown=bob:team /out /home/bob/out
COPY --chown=bob a.txt /home/bob/
WORKDIR /home/bob/work
USER 2000
WORKDIR /as-2000
`, "a.txt": "A"},
		"custom-file": {"Dockerfile": "FROM scratch\nCOPY nothing-here /\n", "build.Dockerfile": `ARG BASE=bbase
FROM $BASE
COPY . /ctx/
`, "build.Dockerfile.dockerignore": "*.secret\n", ".dockerignore": "*.txt\n", "a.txt": "A", "b.secret": "S"},
		"add-archives": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS src
RUN mkdir -p /real/dir && echo r > /real/dir/f && ln -s /real/dir /link && ln -s dir /real/rel
FROM $BASE
ADD --chown=5:6 owned.tar /chowned/
ADD --chmod=0600 owned.tar /chmodded/
ADD not-a.tar /plain/
ADD owned.tar.gz /gz-into-file
COPY --from=src /link/f /through-abs-link
COPY --from=src /real/rel/ /through-rel-link/
COPY --from=src /link /link-as-source/
`},
		"multi-source": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
COPY a b /nodir
COPY a* /glob-nodir
COPY d a /mixed
`, "a": "A", "b": "B", "d/x": "X"},
		"exec-forms": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
ENV V=value
RUN ["sh", "-c", "echo \"$V $0\" > /exec-sh"]
RUN ["/bin/sh", "-c", "echo '$V' > /single-quoted"]
WORKDIR /wd
RUN ["touch", "made-in-wd"]
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "$V" > /shell-e
ENTRYPOINT ["/bin/sh", "-c", "echo $V"]
CMD ["ignored", "args"]
`},
		"sandbox": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status > /status && id > /id && umask > /umask && hostname > /hostname && cat /etc/hosts > /hosts
RUN awk '$5 ~ "^/sys/" && $5 != "/sys/fs/cgroup" && $6 !~ /^ro(,|$)/ { print "writable", $5 }' /proc/self/mountinfo > /sys-writable
RUN (ls -ld /dev/shm /dev/mqueue /dev/pts; ls /dev | grep -v otel-grpc) | awk '{print $1, $NF}' > /dev-listing
USER app
RUN grep -E '^(CapEff|NoNewPrivs):' /proc/self/status > /tmp/status-user && id > /tmp/id-user
`},
		"inheritance": {"Dockerfile": `ARG BASE=bbase
ARG TAG_SUFFIX=-x
FROM $BASE AS parent
CMD ["parent-cmd"]
HEALTHCHECK --interval=7s CMD true
ONBUILD RUN echo "trigger ran" > /onbuild-in-stage
ONBUILD ENV FROM_TRIGGER=1
LABEL parent=yes
EXPOSE 1111
VOLUME /pvol
FROM parent AS child
ENTRYPOINT ["/bin/echo"]
HEALTHCHECK NONE
LABEL child=yes
FROM child AS grandchild
CMD ["own"]
STOPSIGNAL SIGQUIT
`},
		"ignore-edge": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
COPY . /ctx/
`, ".dockerignore": "**/node_modules\n*/temp*\ntemp?\nbuild\n!build/keep.txt\nDockerfile\n.dockerignore\n# comment\n  spaced.txt  \n/abs/*.log\n",
			"a/node_modules/x": "x", "node_modules/y": "y", "a/tempfile": "t", "a/b/tempfile": "t2", "temp1": "1", "temp12": "12",
			"build/out.o": "o", "build/keep.txt": "k", "spaced.txt": "s", "abs/x.log": "l", "abs/sub/y.log": "l2", "keep.txt": "kk"},
		"bind-ignore": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN --mount=type=bind,target=/c find /c | sort > /listing && find /c | sort | xargs stat -c '%n %F %a %u:%g' > /listing-meta
RUN --mount=type=bind,source=sub,target=/s find /s | sort > /sub-listing
`, ".dockerignore": "*.secret\nsub/skip\n", "a.txt": "A", "b.secret": "S", "sub/keep": "K", "sub/skip": "X"},
		"add-git": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
ADD GITURL/repo.git#v1 /src
ADD GITURL/repo.git#main:sub /sub
ADD GITURL/repo.git /default-branch/
`},
		"cli-labels": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS first
LABEL from.file=1 overridden=file
FROM first
LABEL second=2
`},
		"dest-paths": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN mkdir -p /target/sub && ln -s /target /sym && ln -s target /relsym && mkdir -p /cached && echo image > /cached/f
WORKDIR /sym/sub
RUN pwd > /wd-pwd
WORKDIR /
COPY --chown=1234 a.txt /sym/sub/uid-only
COPY --chown=app a.txt /relsym/name-only
COPY --chown=:5 a.txt /group-only
COPY --chown=app: a.txt /empty-group
COPY a.txt /relsym/sub/deeper/
RUN --mount=type=cache,target=/cached ls /cached > /cache-hides
USER 4321
WORKDIR /made-by-unknown-uid
`, "a.txt": "A"},
		"values": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
ARG QUOTED="a-b"
ARG SINGLE='$NOT'
ENV EMPTY= ALSO_EMPTY="" Q=$QUOTED S=$SINGLE
ENV LEGACY_EMPTY ""
LABEL empty= "with spaces"="x y" unicode="héllo ✓"
VOLUME ["/a", "/b"]
VOLUME /c /d
CMD ["say \"hi\"", "ünï", "$HOME"]
ENTRYPOINT ["/bin/sh", "-c", "echo $0 \"$@\"", "$NOT_EXPANDED"]
RUN echo "[$EMPTY][$ALSO_EMPTY][$Q][$S][$LEGACY_EMPTY]" > /values
`},
		"stage-paths": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS src
WORKDIR /deep/wd
RUN echo w > here && mkdir -p /rootrel && echo r > /rootrel/f
USER app
FROM $BASE AS gone
WORKDIR /vanishing
RUN rmdir /vanishing
FROM gone
RUN pwd > /tmp/pwd-recreated && ls -ld /vanishing | awk '{print $1, $3}' > /tmp/vanishing
COPY --from=src rootrel/f /from-rel
COPY --from=src /deep/wd/here /from-wd
COPY --from=src deep /whole-deep
`},
		"mount-options": {"Dockerfile": `ARG BASE=bbase
FROM $BASE AS stage
RUN mkdir /data && echo orig > /data/f
FROM $BASE
WORKDIR /wd
RUN --mount=type=secret,id=tok,target=rel/secret,uid=1000,gid=5,mode=0440 stat -c '%n %a %u:%g' /wd/rel/secret > /secret-stat && cat /wd/rel/secret | wc -c >> /secret-stat
RUN --mount=type=bind,from=stage,source=/data,target=/d,rw echo changed > /d/f && cat /d/f > /rw-stage
RUN --mount=type=bind,from=stage,source=/data,target=/d cat /d/f > /ro-stage-after
RUN --mount=type=cache,target=relcache echo x > relcache/y && ls -d /wd/relcache > /relcache
`},
		"scratch-rootfs": {"Dockerfile": `FROM scratch
ADD rootfs.tar.gz /
CMD ["/bin/sh"]
FROM scratch AS copied
COPY --from=0 / /
`},
		"add-url": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
ADD URL/dir/file.txt /fetched/
ADD URL/dir/file.txt /named
ADD --chmod=0755 URL/dir/file.txt /exec
ADD URL/dir/ /indir/
ADD --chown=5:6 URL/owned /owned-url
`},
		"whiteouts": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
RUN mkdir -p /w/a/b && echo 1 > /w/a/b/f && echo 2 > /w/g && echo 3 > /w/h
RUN rm -rf /w/a && rm /w/g && mkdir /w/a && echo 4 > /w/a/new && chmod 700 /w/h
RUN rm -rf /w && mkdir /w && echo 5 > /w/only
RUN rm -f /bin/ls
`},
		"shell-forms": {"Dockerfile": `ARG BASE=bbase
FROM $BASE
SHELL ["/bin/sh", "-xc"]
RUN echo x > /x
ENTRYPOINT ["/bin/sh"]
CMD echo from cmd
HEALTHCHECK NONE
STOPSIGNAL 9
ONBUILD COPY . /app
ONBUILD RUN echo child
`},
	}
	// shell commands that finish a case's context (what bldContext cannot make)
	prep := map[string]string{
		"mounts-heredoc-ignore": "tar -cf arch.tar in",
		"copy-edge":             "tar -czf arch.tar.gz d",
		"dir-dest":              "mkdir -p d/in && echo x > d/x && chmod 700 d d/in && chown 5:5 d",
		"scratch-rootfs": `mkdir -p r/bin r/etc r/tmp && chmod 700 r && chmod 1777 r/tmp && cp "$(command -v busybox)" r/bin/busybox && ln -s busybox r/bin/sh
echo 'root:x:0:0::/root:/bin/sh' > r/etc/passwd && tar -C r --numeric-owner -czf rootfs.tar.gz . && rm -rf r`,
		// BuildKit shows context files as 0:0, strata's bind its owner's
		// as root's (git then trusts a checkout owned by the CI user)
		"bind-ignore": "chown -R 1000:1000 . && chmod 700 sub && chmod 640 a.txt",
		"add-archives": `mkdir -p t/sub && echo o > t/sub/f && chown -R 7:8 t && chmod 640 t/sub/f
tar -C t -cf owned.tar . && tar -C t -czf owned.tar.gz sub && rm -rf t
echo 'not a tar at all' > not-a.tar`,
		"context-edge": `mkdir -p modes/sticky emptydir 'uni/ünï cödé' hl tars/src/sub
chmod 1777 modes/sticky; echo s > modes/suid; chmod 4755 modes/suid
echo p > modes/private; chmod 600 modes/private; mkdir modes/closed; chmod 700 modes/closed
echo h > hl/a; ln hl/a hl/b; echo u > 'uni/ünï cödé/f'
echo t > tars/src/sub/f; chmod 700 tars/src
tar -C tars/src -cJf tars/a.tar.xz .; tar -C tars/src -cjf tars/a.tar.bz2 .; tar -C tars/src --zstd -cf tars/a.tar.zst .
echo plain > tars/p; gzip tars/p; rm -rf tars/src`,
	}
	args := map[string][]string{
		"args-env":  {"LOCAL=over", "UNUSED=u"},
		"proxy-env": {"HTTP_PROXY=http://proxy.invalid:3128", "no_proxy=localhost"},
	}
	targets := map[string]string{"target": "picked"}
	dockerfiles := map[string]string{"custom-file": "build.Dockerfile"}
	labels := map[string][]string{"cli-labels": {"overridden=cli", "cli.only=yes"}}
	secretFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(secretFile, []byte("s3cr3t-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("E2E_SECRET_TOK", "s3cr3t-env")
	secrets := map[string][]string{"secrets": {"id=tok,src=" + secretFile, "id=envtok,env=E2E_SECRET_TOK"}, "mount-options": {"id=tok,src=" + secretFile}}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", "Sun, 26 Jan 2020 00:53:20 GMT")
		w.Write([]byte("remote " + r.URL.Path + "\n"))
	}))
	defer srv.Close()

	// a git repository over smart HTTP, for ADD (the case skips without git)
	var gitURL string
	if _, err := exec.LookPath("git"); err == nil {
		if _, err := os.Stat("/usr/lib/git-core/git-http-backend"); err == nil {
			gitRoot := t.TempDir()
			gitWork := filepath.Join(gitRoot, "work")
			os.MkdirAll(gitWork, 0o755)
			gitRepo(t, gitWork, "git init -q -b main .", "echo A > a.txt", "mkdir sub && printf '#!/bin/sh\\n' > sub/run.sh && chmod 755 sub/run.sh",
				"ln -s a.txt link && mkdir empty-in-git-is-absent", "git add -A && git commit -q -m one && git tag -a v1 -m v1",
				"echo B > b.txt && git add -A && git commit -q -m two", "git clone -q --bare . "+filepath.Join(gitRoot, "repo.git"))
			gitURL = "http://" + gitServer(t, gitRoot)
		}
	}

	// a parent image with ONBUILD triggers, built and pushed by strata, for
	// both to build a child of
	parent := bldContext(t, map[string]string{"Dockerfile": `FROM bbase
ONBUILD COPY . /app
ONBUILD RUN echo "child of parent" > /onbuilt
ONBUILD ENV FROM_ONBUILD=yes
`})
	e.ok("build", "-q", "-t", reg+"/e2e-onbuild-parent:1", parent)
	e.ok("push", "-q", reg+"/e2e-onbuild-parent:1")
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if name == "add-git" && gitURL == "" {
				t.Skip("no git or git-http-backend")
			}
			e := &env{t: t, Root: e.Root}
			ctx := bldContext(t, cases[name])
			// context files are old, so that the times COPY keeps can be
			// told from the times of what the build made (see layerListings)
			{
				sh := prep[name]
				sh += "\nfind . -exec touch -h -d @1500000000 {} +"
				cmd := exec.Command("sh", "-ec", sh)
				cmd.Dir = ctx
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("preparing the context: %v\n%s", err, out)
				}
			}
			var sArgs []string
			bArgs := []string{"build", "--frontend", "dockerfile.v0", "--local", "context=" + ctx,
				"--local", "dockerfile=" + ctx, "--opt", "build-arg:BASE=" + reg + "/bbase"}
			for _, a := range args[name] {
				sArgs = append(sArgs, "--build-arg", a)
				bArgs = append(bArgs, "--opt", "build-arg:"+a)
			}
			if tg := targets[name]; tg != "" {
				sArgs = append(sArgs, "--target", tg)
				bArgs = append(bArgs, "--opt", "target="+tg)
			}
			if f := dockerfiles[name]; f != "" {
				sArgs = append(sArgs, "-f", filepath.Join(ctx, f))
				bArgs = append(bArgs, "--opt", "filename="+f)
			}
			for _, l := range labels[name] {
				sArgs = append(sArgs, "--label", l)
				bArgs = append(bArgs, "--opt", "label:"+l)
			}
			for _, a := range secrets[name] {
				sArgs = append(sArgs, "--secret", a)
				bArgs = append(bArgs, "--secret", a)
			}
			// images in the registry, for both
			df := filepath.Join(ctx, "Dockerfile")
			b, _ := os.ReadFile(df)
			b = []byte(strings.ReplaceAll(string(b), "REGISTRY/", reg+"/"))
			b = []byte(strings.ReplaceAll(string(b), "GITURL/", gitURL+"/"))
			os.WriteFile(df, []byte(strings.ReplaceAll(string(b), "URL/", srv.URL+"/")), 0o644)
			sTree, sCfg := bldBuild(t, e, ctx, "cmp-"+name, sArgs...)
			dt := filepath.Join(t.TempDir(), "bk.tar")
			out, err := exec.Command("buildctl", append(bArgs, "--output", "type=docker,name=cmp,dest="+dt)...).CombinedOutput()
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

			// layer by layer: the same entries (name, type, mode, owner,
			// size, link) in the same number of layers
			st := filepath.Join(t.TempDir(), "strata.tar")
			e.ok("save", "-o", st, "cmp-"+name)
			sImg, err := tarball.ImageFromPath(st, nil)
			if err != nil {
				t.Fatal(err)
			}
			// the whole config, but for what must differ: times, and the
			// layers' digests (files' times differ); history is above
			sRaw, _ := sImg.RawConfigFile()
			if d := configDiff(sRaw, raw); d != "" {
				t.Errorf("config files differ:\n%s", d)
			}
			sl, bl := layerListings(t, sImg), layerListings(t, img)
			if len(sl) != len(bl) {
				t.Errorf("%d layers, BuildKit %d", len(sl), len(bl))
			}
			for i := 1; i < min(len(sl), len(bl)); i++ { // 0: the base
				sl[i], bl[i] = sameDeletions(sl[i], bl[i])
				if !reflect.DeepEqual(sl[i], bl[i]) {
					t.Errorf("layer %d differs:\nstrata:\n  %s\nbuildkit:\n  %s", i, strings.Join(sl[i], "\n  "), strings.Join(bl[i], "\n  "))
				}
			}
			// History: BuildKit's text, but build-arg names without their
			// values, which strata never records.
			// The base image's entry names the tarball it was imported from.
			for i := 1; i < max(len(sCfg.History), len(bCfg.History)); i++ {
				var sh, bh string
				if i < len(sCfg.History) {
					h := sCfg.History[i]
					sh = fmt.Sprintf("%q comment=%q empty=%v", h.CreatedBy, h.Comment, h.EmptyLayer)
				}
				if i < len(bCfg.History) {
					h := bCfg.History[i]
					bh = fmt.Sprintf("%q comment=%q empty=%v", withoutArgValues(h.CreatedBy), h.Comment, h.EmptyLayer)
				}
				if sh != bh {
					t.Errorf("history %d:\nstrata:   %s\nbuildkit: %s", i, sh, bh)
				}
			}
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

// withoutArgValues drops the values from BuildKit's history text of ARG
// ("ARG A=1 B=2" → "ARG A B") and of RUN with build args
// ("RUN |2 A=1 B=2 cmd" → "RUN |2 A B cmd"). Test values have no spaces.
func withoutArgValues(createdBy string) string {
	f := strings.Split(createdBy, " ")
	first, n := 1, 0
	switch {
	case f[0] == "ARG":
		n = len(f) - 1
	case f[0] == "RUN" && len(f) > 1 && strings.HasPrefix(f[1], "|"):
		first = 2
		n, _ = strconv.Atoi(f[1][1:])
	}
	for i := first; i < first+n && i < len(f); i++ {
		f[i], _, _ = strings.Cut(f[i], "=")
	}
	return strings.Join(f, " ")
}

// oldTimes: times before it were kept from the context, the base image or
// an http Last-Modified, and must be equal (but for directories); later ones
// are the build's.
var oldTimes = time.Unix(1600000000, 0)

// layerListings lists each layer's entries, one sorted line each:
// "name type mode uid:gid size mtime link" (mtime "new" after oldTimes).
func layerListings(t *testing.T, img v1.Image) [][]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
			// Directories' times are left out: BuildKit's depend on the
			// order it writes their content in.
			mtime := "new" // made by the build: times differ
			if h.ModTime.Before(oldTimes) && h.Typeflag != tar.TypeDir {
				mtime = h.ModTime.UTC().Format(time.RFC3339)
			}
			lines = append(lines, fmt.Sprintf("%s %c %o %d:%d %d %s %s", name, h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid, h.Size, mtime, h.Linkname))
		}
		rc.Close()
		sort.Strings(lines)
		out = append(out, lines)
	}
	return out
}

// sameDeletions makes one layer's listings comparable where they say the
// same deletion two ways: strata marks a directory that was deleted and
// made again opaque (".wh..wh..opq", as docker does); BuildKit writes a
// whiteout for each entry below it that is gone. The flattened trees show
// that both delete the same.
func sameDeletions(s, b []string) ([]string, []string) {
	var opaque []string
	var sOut []string
	for _, l := range s {
		name, _, _ := strings.Cut(l, " ")
		if dir, ok := strings.CutSuffix(name, "/.wh..wh..opq"); ok {
			opaque = append(opaque, dir+"/")
			continue
		}
		sOut = append(sOut, l)
	}
	var bOut []string
	for _, l := range b {
		name, _, _ := strings.Cut(l, " ")
		hidden := false
		for _, d := range opaque {
			if rest, ok := strings.CutPrefix(name, d); ok && strings.HasPrefix(rest, ".wh.") && !strings.Contains(rest, "/") {
				hidden = true
			}
		}
		if !hidden {
			bOut = append(bOut, l)
		}
	}
	return sOut, bOut
}

// configDiff lists the differences of two image config files, leaving out
// "created", "history" and "rootfs".
func configDiff(a, b []byte) string {
	var ma, mb map[string]any
	json.Unmarshal(a, &ma)
	json.Unmarshal(b, &mb)
	for _, k := range []string{"created", "history", "rootfs"} {
		delete(ma, k)
		delete(mb, k)
	}
	var out []string
	var walk func(p string, x, y any)
	walk = func(p string, x, y any) {
		mx, okx := x.(map[string]any)
		my, oky := y.(map[string]any)
		if okx && oky {
			keys := map[string]bool{}
			for k := range mx {
				keys[k] = true
			}
			for k := range my {
				keys[k] = true
			}
			for k := range keys {
				walk(p+"."+k, mx[k], my[k])
			}
			return
		}
		if !reflect.DeepEqual(x, y) {
			xj, _ := json.Marshal(x)
			yj, _ := json.Marshal(y)
			out = append(out, fmt.Sprintf("%s: strata %s, buildkit %s", p, xj, yj))
		}
	}
	walk("", ma, mb)
	sort.Strings(out)
	return strings.Join(out, "\n")
}
