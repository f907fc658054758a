package builder

// This file belongs to the foundation engineer (strata import --change).

import (
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestApplyChanges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		start   v1.Config
		changes []string
		want    string // v1.Config as JSON
		err     string
	}{
		{name: "cmd exec", changes: []string{`CMD ["/bin/sh", "-c", "echo hi"]`},
			want: `{"Cmd":["/bin/sh","-c","echo hi"]}`},
		{name: "cmd shell", changes: []string{`CMD echo hi there`},
			want: `{"Cmd":["/bin/sh","-c","echo hi there"]}`},
		{name: "cmd shell with config shell", start: v1.Config{Shell: []string{"/bin/bash", "-ec"}}, changes: []string{`CMD echo`},
			want: `{"Cmd":["/bin/bash","-ec","echo"],"Shell":["/bin/bash","-ec"]}`},
		{name: "entrypoint resets old cmd", start: v1.Config{Cmd: []string{"sh"}}, changes: []string{`ENTRYPOINT ["/app"]`},
			want: `{"Entrypoint":["/app"]}`},
		{name: "entrypoint keeps cmd set before", changes: []string{`CMD ["-v"]`, `ENTRYPOINT ["/app"]`},
			want: `{"Cmd":["-v"],"Entrypoint":["/app"]}`},
		{name: "env forms and expansion", start: v1.Config{Env: []string{"PATH=/bin"}},
			changes: []string{`ENV PATH=/usr/bin:$PATH A="x y"`, `ENV B ${A}-z`},
			want:    `{"Env":["PATH=/usr/bin:/bin","A=x y","B=x y-z"]}`},
		{name: "label", changes: []string{`LABEL a=b "c d"="e f"`},
			want: `{"Labels":{"a":"b","c d":"e f"}}`},
		{name: "expose", changes: []string{`EXPOSE 80 53/udp 8000-8002/TCP`},
			want: `{"ExposedPorts":{"53/udp":{},"80/tcp":{},"8000/tcp":{},"8001/tcp":{},"8002/tcp":{}}}`},
		{name: "expose var", start: v1.Config{Env: []string{"P=9000"}}, changes: []string{`EXPOSE $P`},
			want: `{"Env":["P=9000"],"ExposedPorts":{"9000/tcp":{}}}`},
		{name: "user", changes: []string{`USER 1000:1000`}, want: `{"User":"1000:1000"}`},
		{name: "volume", changes: []string{`VOLUME /data`, `VOLUME ["/a", "/b"]`},
			want: `{"Volumes":{"/a":{},"/b":{},"/data":{}}}`},
		{name: "workdir relative", changes: []string{`WORKDIR /srv`, `WORKDIR app/../www`},
			want: `{"WorkingDir":"/srv/www"}`},
		{name: "workdir from root", changes: []string{`WORKDIR app`}, want: `{"WorkingDir":"/app"}`},
		{name: "lower case", changes: []string{`user nobody`}, want: `{"User":"nobody"}`},
		{name: "onbuild", changes: []string{`ONBUILD RUN make`}, want: `{"OnBuild":["RUN make"]}`},
		{name: "run refused", changes: []string{`RUN rm -rf /`}, err: `--change "RUN rm -rf /": RUN is not supported (use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME or WORKDIR)`},
		{name: "from refused", changes: []string{`FROM x`}, err: `--change "FROM x": FROM is not supported (use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME or WORKDIR)`},
		{name: "two instructions", changes: []string{"USER a\nUSER b"}, err: `--change "USER a\nUSER b": want exactly one instruction, got 2`},
		{name: "empty", changes: []string{""}, err: `--change "": empty instruction`},
		{name: "bad port", changes: []string{`EXPOSE 99999`}, err: `--change "EXPOSE 99999": invalid port "99999" in EXPOSE`},
		{name: "bad proto", changes: []string{`EXPOSE 80/xyz`}, err: `--change "EXPOSE 80/xyz": invalid proto "xyz" in EXPOSE 80/xyz`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.start
			err := ApplyChanges(&cfg, tc.changes)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(cfg)
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}
