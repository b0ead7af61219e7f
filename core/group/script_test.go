package group

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata")

// TestScripts runs every testdata/*.script through a group and compares the
// transcript (each step followed by its responses, effects and the group's
// state) with testdata/*.golden. Run with -update to regenerate, then review
// the diff.
//
// Script steps, one per line (# starts a comment):
//
//	config initial_delay=DUR
//	join HANDLE client=ID [member=ID] [instance=ID] [session=DUR] [rebalance=DUR] [protocols=NAME:META,...] [v4]
//	sync HANDLE member=ID gen=N [instance=ID] [assign=MEMBER:DATA,...]
//	heartbeat member=ID gen=N [instance=ID]
//	leave member=ID [instance=ID] [member=ID ...]
//	commit member=ID gen=N [instance=ID] TOPIC/PARTITION=OFFSET...
//	tick DUR        (advance the clock, then tick)
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.script")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, path := range scripts {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".script"), func(t *testing.T) {
			got := runScript(t, path)
			golden := strings.TrimSuffix(path, ".script") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("transcript differs from %s (run with -update and review the diff):\n%s", golden, diffLines(string(want), got))
			}
		})
	}
}

func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

func runScript(t *testing.T, path string) string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	now := time.Unix(1_700_000_000, 0)
	start := now
	cfg := Config{InitialRebalanceDelay: -1}
	var g *Group
	var out strings.Builder
	sc := bufio.NewScanner(f)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			out.WriteString(sc.Text() + "\n")
			continue
		}
		fields := strings.Fields(line)
		args := map[string][]string{}
		var pos []string
		for _, f := range fields[1:] {
			if k, v, ok := strings.Cut(f, "="); ok && !strings.Contains(k, "/") {
				args[k] = append(args[k], v)
			} else {
				pos = append(pos, f)
			}
		}
		arg := func(k, def string) string {
			if v := args[k]; len(v) > 0 {
				return v[0]
			}
			return def
		}
		dur := func(k, def string) time.Duration {
			d, err := time.ParseDuration(arg(k, def))
			if err != nil {
				t.Fatalf("%s:%d: %s: %v", path, lineNo, k, err)
			}
			return d
		}
		num := func(s string) int64 {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("%s:%d: %q: %v", path, lineNo, s, err)
			}
			return n
		}
		if fields[0] == "config" {
			cfg.InitialRebalanceDelay = dur("initial_delay", "0s")
			if cfg.InitialRebalanceDelay == 0 {
				cfg.InitialRebalanceDelay = -1
			}
			out.WriteString(line + "\n")
			continue
		}
		if g == nil {
			g = New("g", cfg, now)
		}
		out.WriteString(line + "\n")
		var eff Effects
		switch fields[0] {
		case "join":
			var protos []Protocol
			for _, p := range strings.Split(arg("protocols", "range:sub"), ",") {
				name, meta, _ := strings.Cut(p, ":")
				protos = append(protos, Protocol{Name: name, Metadata: []byte(meta)})
			}
			eff = g.Join(now, JoinRequest{
				Handle: uint64(num(strings.TrimPrefix(pos[0], "h"))), MemberID: arg("member", ""), InstanceID: arg("instance", ""),
				ClientID: arg("client", "c"), SessionTimeout: dur("session", "10s"), RebalanceTimeout: dur("rebalance", "30s"),
				ProtocolType: "consumer", Protocols: protos, RequireKnownMemberID: len(pos) > 1 && pos[1] == "v4",
			})
		case "sync":
			as := map[string][]byte{}
			if a := arg("assign", ""); a != "" {
				for _, kv := range strings.Split(a, ",") {
					k, v, _ := strings.Cut(kv, ":")
					as[k] = []byte(v)
				}
			}
			eff = g.Sync(now, SyncRequest{Handle: uint64(num(strings.TrimPrefix(pos[0], "h"))), MemberID: arg("member", ""),
				InstanceID: arg("instance", ""), Generation: int32(num(arg("gen", "-1"))), Assignments: as})
		case "heartbeat":
			fmt.Fprintf(&out, "  -> %s\n", g.Heartbeat(now, arg("member", ""), arg("instance", ""), int32(num(arg("gen", "-1")))))
		case "leave":
			var lms []LeaveMember
			for _, m := range args["member"] {
				lms = append(lms, LeaveMember{MemberID: m})
			}
			for _, in := range args["instance"] {
				lms = append(lms, LeaveMember{InstanceID: in})
			}
			var codes []Code
			codes, eff = g.Leave(now, lms)
			fmt.Fprintf(&out, "  -> leave %v\n", codes)
		case "commit":
			code := g.CheckCommit(arg("member", ""), arg("instance", ""), int32(num(arg("gen", "-1"))))
			if code == None {
				offs := map[TopicPartition]Offset{}
				for _, p := range pos {
					tp, o, _ := strings.Cut(p, "=")
					topic, part, _ := strings.Cut(tp, "/")
					offs[TopicPartition{topic, int32(num(part))}] = Offset{Offset: num(o), LeaderEpoch: -1}
				}
				g.Commit(now, offs)
			}
			fmt.Fprintf(&out, "  -> commit %s\n", code)
		case "tick":
			now = now.Add(dur("", pos[0]))
			eff = g.Tick(now)
		default:
			t.Fatalf("%s:%d: unknown step %q", path, lineNo, fields[0])
		}
		for _, j := range eff.Joins {
			fmt.Fprintf(&out, "  -> join h%d: %s gen=%d protocol=%s leader=%s member=%s", j.Handle, j.Code, j.Generation, j.Protocol, j.Leader, j.MemberID)
			if len(j.Members) > 0 {
				var ms []string
				for _, m := range j.Members {
					ms = append(ms, m.MemberID+":"+string(m.Metadata))
				}
				fmt.Fprintf(&out, " members=[%s]", strings.Join(ms, " "))
			}
			if j.SkipAssignment {
				out.WriteString(" skip_assignment")
			}
			out.WriteString("\n")
		}
		for _, s := range eff.Syncs {
			fmt.Fprintf(&out, "  -> sync h%d: %s assignment=%q\n", s.Handle, s.Code, s.Assignment)
		}
		if eff.Persist {
			out.WriteString("  -> persist\n")
		}
		fmt.Fprintf(&out, "  = t=%s %s gen=%d leader=%s members=%v", now.Sub(start), g.State, g.Generation, g.Leader, g.sortedMemberIDs())
		if offs := g.Offsets(); len(offs) > 0 {
			var os []string
			for _, o := range offs {
				os = append(os, fmt.Sprintf("%s/%d=%d", o.Topic, o.Partition, o.Offset.Offset))
			}
			sort.Strings(os)
			fmt.Fprintf(&out, " offsets=%v", os)
		}
		out.WriteString("\n")
	}
	return out.String()
}
