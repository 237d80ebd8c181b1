package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// chaosPackage is the experiment machinery, which only the chaos build links.
const chaosPackage = "example.com/shopsession/chaos"

// TestProductionBinaryOmitsExperiments proves that the default build carries
// nothing of the experiments — the root's files built only with -tags chaos
// (chaos_on.go) and the package they hand calls to (chaos/) — in the manner
// of Go's TestCmdGoNoHTTPServer: the production binary is byte-identical to
// one built from a tree without them, and their names, environment variables
// and metrics are absent from it and from its /metrics, while present in the
// chaos binary and its /metrics. TestProductionDepsOmitChaos proves the same
// of the package graph.
func TestProductionBinaryOmitsExperiments(t *testing.T) {
	chaosFiles := chaosOnlyFiles(t)
	if !slices.Contains(chaosFiles, "chaos_on.go") {
		t.Fatalf("chaos-only files %q lack chaos_on.go", chaosFiles)
	}
	packageFiles := packageSourceFiles(t, "chaos")
	dir := t.TempDir()
	prod := goBuild(t, ".", filepath.Join(dir, "prod"))
	chaos := goBuild(t, ".", filepath.Join(dir, "chaos"), "-tags", "chaos")

	// The copy holds the root's other files, the folders it embeds from and
	// the other packages of the module, and nothing of chaos/: if the production build needed the package, or
	// any chaos-only file changed a byte of it, this build would fail or
	// differ.
	withoutFiles := filepath.Join(dir, "tree-without-chaos-files")
	copyTreeExcept(t, ".", withoutFiles, chaosFiles)
	if _, err := os.Stat(filepath.Join(withoutFiles, "chaos")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the copy without the chaos files holds chaos/ (%v)", err)
	}
	if prodWithout, err := tryGoBuild(withoutFiles, filepath.Join(dir, "prod-without")); err != nil {
		t.Errorf("the production build needs what a tree without %q and chaos/ lacks: %v", chaosFiles, err)
	} else if a, b := sha256.Sum256(prod), sha256.Sum256(prodWithout); a != b {
		t.Errorf("production binary %x differs from one built without %q and chaos/: %x", a, chaosFiles, b)
	}

	// The package's import path prefixes every symbol of it and every
	// function name in the binary's tables, inlined ones included.
	if n := bytes.Count(prod, []byte(chaosPackage)); n != 0 {
		t.Errorf("production binary contains %s %d times", chaosPackage, n)
	}
	if !bytes.Contains(chaos, []byte(chaosPackage+".")) {
		t.Errorf("positive control: chaos binary lacks %s", chaosPackage)
	}

	prodSymbols, chaosSymbols := goToolNM(t, filepath.Join(dir, "prod")), goToolNM(t, filepath.Join(dir, "chaos"))
	var names []declaredName
	var envVars []string
	for _, f := range chaosFiles {
		n, e := declaredIn(t, f, "main")
		names, envVars = append(names, n...), append(envVars, e...)
	}
	for _, f := range packageFiles {
		n, e := declaredIn(t, f, chaosPackage)
		names, envVars = append(names, n...), append(envVars, e...)
	}
	slices.Sort(envVars)
	envVars = slices.Compact(envVars)
	for _, want := range []string{"CHAOS", "CHAOS_DELAY_SECONDS", "CHAOS_ERROR_EVERY", "CHAOS_LAYER"} {
		if !slices.Contains(envVars, want) {
			t.Fatalf("found the variables %q in %q and %q, not %s", envVars, chaosFiles, packageFiles, want)
		}
	}
	if len(names) < 50 || len(envVars) < 10 {
		t.Fatalf("found only %d names and variables %q in %q and %q", len(names), envVars, chaosFiles, packageFiles)
	}
	for _, d := range names {
		if in := d.in(prod, prodSymbols); in != "" {
			t.Errorf("production binary contains %s", in)
		}
		// Constants never reach a binary; everything else must, or this test
		// could not tell a missing name from a removed one.
		if !d.isConst && d.in(chaos, chaosSymbols) == "" {
			t.Errorf("positive control: chaos binary lacks %s", d.needles[0])
		}
	}
	for _, env := range envVars {
		if n := countVariable(prod, env); n != 0 {
			t.Errorf("production binary contains %s %d times", env, n)
		}
		if countVariable(chaos, env) == 0 {
			t.Errorf("positive control: chaos binary lacks %s", env)
		}
	}
	if strings.Contains(strings.ToLower(prodSymbols), "chaos") {
		t.Errorf("production binary has a symbol named chaos-something")
	}

	// The experiments' metrics: no name, help text or label name in the
	// production binary, nor in what its /metrics serves; all of them in the
	// chaos binary's.
	var chaosMetrics []metricText
	for _, f := range slices.Concat(chaosFiles, packageFiles) {
		chaosMetrics = append(chaosMetrics, metricTextsIn(t, f)...)
	}
	kinds := map[string]int{}
	for _, m := range chaosMetrics {
		kinds[m.kind]++
		if bytes.Contains(prod, []byte(m.text)) || bytes.Contains(prod, []byte(m.exposed)) {
			t.Errorf("production binary contains the chaos metric %s %q (%q)", m.kind, m.text, m.exposed)
		}
		if !bytes.Contains(chaos, []byte(m.text)) {
			t.Errorf("positive control: chaos binary lacks the chaos metric %s %q", m.kind, m.text)
		}
	}
	if kinds["name"] < 8 || kinds["help"] < 8 || kinds["label"] < 2 {
		t.Fatalf("found only %v in the chaos files' metric options: %+v", kinds, chaosMetrics)
	}
	// The settings' JSON fields, the status's and every other struct tag, and
	// the package's string constants (its messages, the HTTP faults'
	// header): none in the production binary, all in the chaos binary.
	var texts []string
	for _, f := range packageFiles {
		texts = append(texts, packageTextsIn(t, f)...)
	}
	if len(texts) < 100 || !slices.Contains(texts, `json:"http_fault,omitempty"`) || !slices.Contains(texts, "Chaos-Injected") {
		t.Fatalf("found only %d struct tags and constants in %q", len(texts), packageFiles)
	}
	for _, text := range texts {
		if bytes.Contains(prod, []byte(text)) {
			t.Errorf("production binary contains the chaos package's %q", text)
		}
		if !bytes.Contains(chaos, []byte(text)) {
			t.Errorf("positive control: chaos binary lacks the chaos package's %q", text)
		}
	}
	t.Logf("checked %d names, the variables %q, the metric texts %v and %d struct tags and constants", len(names), envVars, kinds, len(texts))
	// With a recommender configured, so that the chaos build wraps its calls
	// and shows their series; nothing calls it.
	recommenderURL := "RECOMMENDER_URL=http://127.0.0.1:1"
	prodScrape := scrape(t, startBinary(t, filepath.Join(dir, "prod"), "REDIS_URL="+testRedis.url(), recommenderURL).testApp)
	chaosScrape := scrape(t, startBinary(t, filepath.Join(dir, "chaos"), "REDIS_URL="+testRedis.url(), recommenderURL).testApp)
	if prodScrape.families["shopsession_http_requests_total"] == nil || chaosScrape.families["shopsession_http_requests_total"] == nil {
		t.Fatalf("a binary's /metrics lacks the service's own metrics")
	}
	for _, m := range chaosMetrics {
		if strings.Contains(prodScrape.text, m.exposed) {
			t.Errorf("production /metrics contains the chaos metric %s %q", m.kind, m.exposed)
		}
		if !strings.Contains(chaosScrape.text, m.exposed) {
			t.Errorf("positive control: chaos /metrics lacks the chaos metric %s %q", m.kind, m.exposed)
		}
		switch m.kind {
		case "name":
			if prodScrape.families[m.exposed] != nil {
				t.Errorf("production /metrics has the family %s", m.exposed)
			}
			if chaosScrape.families[m.exposed] == nil {
				t.Errorf("positive control: chaos /metrics lacks the family %s", m.exposed)
			}
		case "label":
			for name, f := range prodScrape.families {
				for _, series := range f.GetMetric() {
					for _, l := range series.GetLabel() {
						if l.GetName() == m.text {
							t.Errorf("production /metrics: %s has the chaos label %s", name, m.text)
						}
					}
				}
			}
		}
	}
}

// TestProductionDepsOmitChaos proves it of the package graph, in the manner
// of tailscale's cmd/tailscaled/deps_test.go: go list -deps of the
// production build holds no package under example.com/shopsession/chaos, on
// each platform, while the chaos build's holds it (the positive control).
func TestProductionDepsOmitChaos(t *testing.T) {
	for _, platform := range []struct{ goos, goarch string }{
		{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "arm64"}, {"windows", "amd64"},
	} {
		t.Run(platform.goos+"_"+platform.goarch, func(t *testing.T) {
			env := []string{"GOOS=" + platform.goos, "GOARCH=" + platform.goarch, "CGO_ENABLED=0"}
			prod, chaos := goListDeps(t, env), goListDeps(t, env, "-tags", "chaos")
			if !slices.Contains(prod, "example.com/shopsession") || !slices.Contains(prod, "github.com/redis/go-redis/v9") {
				t.Fatalf("go list -deps of the production build: %q", prod)
			}
			for _, pkg := range prod {
				if pkg == chaosPackage || strings.HasPrefix(pkg, chaosPackage+"/") {
					t.Errorf("the production build depends on %s", pkg)
				}
			}
			if !slices.Contains(chaos, chaosPackage) {
				t.Errorf("positive control: the chaos build does not depend on %s: %q", chaosPackage, chaos)
			}
		})
	}
}

// goListDeps lists the packages the root package's build depends on.
func goListDeps(t *testing.T, env []string, flags ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s go %s: %v\n%s", strings.Join(env, " "), strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.Fields(string(out))
}

// metricText is a string a metric's definition puts into a binary, and what
// /metrics then shows of it.
type metricText struct {
	kind    string // name, help or label
	text    string // as the source writes it: a name without its namespace and subsystem
	exposed string // as /metrics shows it: the whole name
}

// metricTextsIn finds the metric names, help texts and label names that a
// file's metric definitions write: its prometheus.…Opts literals, its
// prometheus.Labels literals and the label names of its …Vec constructors.
// An Opts field may be a string literal, or a parameter of a function the
// file declares or assigns (gauge := func(name, help string, …) … Opts{Name:
// name, …}), which then takes it from the literals of that function's calls.
// A Namespace that is not a literal is the service's (Options.Namespace: the
// shop's metricsNamespace); the /metrics scrape is the check of that.
func metricTextsIn(t *testing.T, file string) []metricText {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	type function struct {
		name   string
		params []string
		node   ast.Node
	}
	var funcs []function
	params := func(ft *ast.FuncType) []string {
		var names []string
		for _, field := range ft.Params.List {
			for _, n := range field.Names {
				names = append(names, n.Name)
			}
			if field.Names == nil {
				names = append(names, "_")
			}
		}
		return names
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			funcs = append(funcs, function{n.Name.Name, params(n.Type), n})
		case *ast.AssignStmt:
			for i, rhs := range n.Rhs {
				if lit, ok := rhs.(*ast.FuncLit); ok && i < len(n.Lhs) {
					if id, ok := n.Lhs[i].(*ast.Ident); ok {
						funcs = append(funcs, function{id.Name, params(lit.Type), lit})
					}
				}
			}
		}
		return true
	})
	// enclosing is the innermost function around n.
	enclosing := func(n ast.Node) *function {
		var in *function
		for i := range funcs {
			if f := &funcs[i]; f.node.Pos() <= n.Pos() && n.End() <= f.node.End() && (in == nil || f.node.Pos() > in.node.Pos()) {
				in = f
			}
		}
		return in
	}
	literal := func(e ast.Expr) (string, bool) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(lit.Value)
		return s, err == nil
	}
	// values are the strings an Opts field takes: its literal, or the
	// literals every call of the enclosing function passes for it.
	values := func(opts ast.Node, key string, e ast.Expr) []string {
		if s, ok := literal(e); ok {
			return []string{s}
		}
		id, ok := e.(*ast.Ident)
		fn := enclosing(opts)
		if !ok || fn == nil || !slices.Contains(fn.params, id.Name) {
			t.Errorf("%s: a metric's %s is neither a string literal nor a parameter of the function around it; write it so the test can find it", file, key)
			return nil
		}
		at := slices.Index(fn.params, id.Name)
		var out []string
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if callee, ok := call.Fun.(*ast.Ident); ok && callee.Name == fn.name && at < len(call.Args) {
				if s, ok := literal(call.Args[at]); ok {
					out = append(out, s)
				} else {
					t.Errorf("%s: a call of %s gives the metric's %s as something other than a string literal", file, fn.name, key)
				}
			}
			return true
		})
		if len(out) == 0 {
			t.Errorf("%s: found no call of %s, which gives a metric its %s", file, fn.name, key)
		}
		return out
	}
	fromPrometheus := func(e ast.Expr) (string, bool) {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return "", false
		}
		pkg, ok := sel.X.(*ast.Ident)
		return sel.Sel.Name, ok && pkg.Name == "prometheus"
	}
	var out []metricText
	add := func(m metricText) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			name, ok := fromPrometheus(n.Type)
			if ok && name == "Labels" {
				for _, l := range n.Elts {
					if s, ok := literal(l.(*ast.KeyValueExpr).Key); ok {
						add(metricText{kind: "label", text: s, exposed: s})
					}
				}
			}
			if !ok || !strings.HasSuffix(name, "Opts") {
				return true
			}
			namespace, subsystem := "", ""
			var names, helps []string
			for _, elt := range n.Elts {
				kv, ok := elt.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				switch key := kv.Key.(*ast.Ident).Name; key {
				case "Name":
					names = values(n, key, kv.Value)
				case "Help":
					helps = values(n, key, kv.Value)
				case "Namespace":
					namespace = metricsNamespace // the service's, from Options
					if s, ok := literal(kv.Value); ok {
						namespace = s
					}
				case "Subsystem":
					s, ok := literal(kv.Value)
					if !ok {
						t.Errorf("%s: a chaos metric's Subsystem is not a string literal", file)
					}
					subsystem = s
				}
			}
			for _, s := range names {
				whole := prometheus.BuildFQName(namespace, subsystem, s)
				if !strings.HasPrefix(whole, metricsNamespace+"_chaos_") {
					t.Errorf("%s: chaos metric %q: want a name starting %s_chaos_", file, whole, metricsNamespace)
				}
				add(metricText{kind: "name", text: s, exposed: whole})
			}
			for _, s := range helps {
				add(metricText{kind: "help", text: s, exposed: s})
			}
		case *ast.CallExpr:
			if name, ok := fromPrometheus(n.Fun); ok && strings.HasPrefix(name, "New") && strings.HasSuffix(name, "Vec") && len(n.Args) == 2 {
				if labels, ok := n.Args[1].(*ast.CompositeLit); ok {
					for _, l := range labels.Elts {
						if s, ok := literal(l); ok {
							add(metricText{kind: "label", text: s, exposed: s})
						}
					}
				}
			}
		}
		return true
	})
	return out
}

func goBuild(t *testing.T, srcDir, out string, flags ...string) []byte {
	t.Helper()
	b, err := tryGoBuild(srcDir, out, flags...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tryGoBuild builds the package in srcDir reproducibly and returns the binary.
func tryGoBuild(srcDir, out string, flags ...string) ([]byte, error) {
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = srcDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go %s in %s: %v\n%s", strings.Join(args, " "), srcDir, err, msg)
	}
	return os.ReadFile(out)
}

func goToolNM(t *testing.T, binary string) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "nm", binary).Output()
	if err != nil {
		t.Fatalf("go tool nm %s: %v", binary, err)
	}
	return string(out)
}

// chaosOnlyFiles lists the package's non-test files that only the chaos
// build compiles, by their //go:build lines.
func chaosOnlyFiles(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(src), "\n") {
			if !constraint.IsGoBuild(line) {
				continue
			}
			expr, err := constraint.Parse(line)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			with := expr.Eval(func(tag string) bool { return tag == "chaos" })
			without := expr.Eval(func(tag string) bool { return false })
			if with && !without {
				files = append(files, path)
			}
			break
		}
	}
	return files
}

// packageSourceFiles lists a folder's non-test Go files.
func packageSourceFiles(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	paths = slices.DeleteFunc(paths, func(p string) bool { return strings.HasSuffix(p, "_test.go") })
	if len(paths) < 5 {
		t.Fatalf("%s holds only %q", dir, paths)
	}
	return paths
}

// copyTreeExcept copies the package's source from src to dst — its Go files,
// go.mod, go.sum and the folders it embeds from — leaving out some top-level
// files, and every other folder (chaos/ among them).
func copyTreeExcept(t *testing.T, src, dst string, except []string) {
	embeddedDirs := []string{"static"}
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Every package the root may import comes along (internal/…);
			// chaos/, what is excepted, and what is not source stay behind.
			if rel == "chaos" || slices.Contains(except, rel) || rel == ".git" || rel == "bin" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		embedded := slices.Contains(embeddedDirs, filepath.Dir(rel))
		source := filepath.Ext(rel) == ".go" || rel == "go.mod" || rel == "go.sum"
		if !source && !embedded || slices.Contains(except, rel) || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

type declaredName struct {
	// needles are how the name appears in a binary: its symbol or the
	// function table's entry (pkg/path.f, pkg/path.(*T).m), and for a type
	// also the name its type descriptor carries (chaos.T), which is there
	// even when the type has no method of its own.
	needles []string
	isConst bool
}

// in returns the needle that a binary or its symbols contain, or "".
func (d declaredName) in(binary []byte, symbols string) string {
	for _, n := range d.needles {
		if bytes.Contains(binary, []byte(n)) || strings.Contains(symbols, n) {
			return n
		}
	}
	return ""
}

var envVarName = regexp.MustCompile(`^CHAOS(_[A-Z0-9]+)*$`)

// declaredIn lists the top-level names a file of the package at pkgPath
// declares, and the environment variable names among its string literals
// (constants, the settings table, the arguments of its calls).
func declaredIn(t *testing.T, file, pkgPath string) ([]declaredName, []string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	prefix, typePrefix := pkgPath+".", pkgPath[strings.LastIndex(pkgPath, "/")+1:]+"."
	var names []declaredName
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			names = append(names, declaredName{needles: []string{prefix + funcSymbol(decl)}})
		case *ast.GenDecl:
			for _, spec := range decl.Specs {
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					// A type's name reaches a binary in its descriptor, or in its
					// methods' symbols.
					names = append(names, declaredName{needles: slices.Compact([]string{prefix + spec.Name.Name, typePrefix + spec.Name.Name,
						prefix + "(*" + spec.Name.Name + ").", prefix + spec.Name.Name + "."})})
				case *ast.ValueSpec:
					for _, n := range spec.Names {
						if n.Name != "_" {
							names = append(names, declaredName{needles: []string{prefix + n.Name}, isConst: decl.Tok == token.CONST})
						}
					}
				}
			}
		}
	}
	var envVars []string
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, _ := strconv.Unquote(lit.Value); envVarName.MatchString(s) {
				envVars = append(envVars, s)
			}
		}
		return true
	})
	return names, envVars
}

// sharedTags are struct tags that package chaos and a dependency of the
// production build both declare: prometheus's client model has the
// journal's metric, name and value.
var sharedTags = []string{`json:"metric,omitempty"`, `json:"name,omitempty"`, `json:"value,omitempty"`}

// packageTextsIn lists the struct tags a file declares, but sharedTags, and
// its string constants of 8 characters or more that are not one word (a
// word such as "connection" is any HTTP library's too), which a binary
// carries as they are written.
func packageTextsIn(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Field:
			if n.Tag != nil {
				if tag, err := strconv.Unquote(n.Tag.Value); err == nil && !slices.Contains(sharedTags, tag) {
					out = append(out, tag)
				}
			}
		case *ast.GenDecl:
			if n.Tok != token.CONST {
				return true
			}
			for _, spec := range n.Specs {
				for _, v := range spec.(*ast.ValueSpec).Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, err := strconv.Unquote(lit.Value); err == nil && len(s) >= 8 && strings.ContainsAny(s, " -") {
							out = append(out, s)
						}
					}
				}
			}
		}
		return true
	})
	return out
}

// funcSymbol is how the linker names a function or method: f, T.m or (*T).m.
func funcSymbol(fn *ast.FuncDecl) string {
	if fn.Recv == nil {
		return fn.Name.Name
	}
	switch recv := fn.Recv.List[0].Type.(type) {
	case *ast.StarExpr:
		return "(*" + recv.X.(*ast.Ident).Name + ")." + fn.Name.Name
	case *ast.Ident:
		return recv.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}

// countVariable counts a variable name in a binary. Go's own DNS code carries
// the class name "ClassCHAOS", which is not ours, so that spelling is not
// counted.
func countVariable(binary []byte, name string) int {
	return bytes.Count(binary, []byte(name)) - bytes.Count(binary, []byte("Class"+name))
}
