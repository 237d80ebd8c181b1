package main

import (
	"bytes"
	"crypto/sha256"
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
)

// TestProductionBinaryOmitsExperiments proves that the default build carries
// nothing of the chaos files (chaos_on.go and the other files built only with
// -tags chaos), in the manner of Go's TestCmdGoNoHTTPServer: the production
// binary is byte-identical to one built without them, and their names are
// absent from it while present in the chaos binary.
func TestProductionBinaryOmitsExperiments(t *testing.T) {
	chaosFiles := chaosOnlyFiles(t)
	if !slices.Contains(chaosFiles, "chaos_on.go") {
		t.Fatalf("chaos-only files %q lack chaos_on.go", chaosFiles)
	}
	dir := t.TempDir()
	prod := goBuild(t, ".", filepath.Join(dir, "prod"))
	chaos := goBuild(t, ".", filepath.Join(dir, "chaos"), "-tags", "chaos")

	withoutFiles := filepath.Join(dir, "tree-without-chaos-files")
	copyTreeExcept(t, ".", withoutFiles, chaosFiles)
	prodWithout := goBuild(t, withoutFiles, filepath.Join(dir, "prod-without"))
	if a, b := sha256.Sum256(prod), sha256.Sum256(prodWithout); a != b {
		t.Errorf("production binary %x differs from one built without %q: %x", a, chaosFiles, b)
	}

	prodSymbols, chaosSymbols := goToolNM(t, filepath.Join(dir, "prod")), goToolNM(t, filepath.Join(dir, "chaos"))
	var names []declaredName
	var envVars []string
	for _, f := range chaosFiles {
		n, e := declaredIn(t, f)
		names, envVars = append(names, n...), append(envVars, e...)
	}
	if len(names) < 5 || len(envVars) < 7 {
		t.Fatalf("found only %d names and variables %q in %q", len(names), envVars, chaosFiles)
	}
	for _, d := range names {
		if bytes.Contains(prod, []byte(d.needle)) || strings.Contains(prodSymbols, d.needle) {
			t.Errorf("production binary contains %s", d.needle)
		}
		// Constants never reach a binary; everything else must, or this test
		// could not tell a missing name from a removed one.
		if !d.isConst && !bytes.Contains(chaos, []byte(d.needle)) && !strings.Contains(chaosSymbols, d.needle) {
			t.Errorf("positive control: chaos binary lacks %s", d.needle)
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
	for _, f := range chaosFiles {
		chaosMetrics = append(chaosMetrics, metricTextsIn(t, f)...)
	}
	kinds := map[string]int{}
	for _, m := range chaosMetrics {
		kinds[m.kind]++
		if bytes.Contains(prod, []byte(m.text)) {
			t.Errorf("production binary contains the chaos metric %s %q", m.kind, m.text)
		}
		if !bytes.Contains(chaos, []byte(m.text)) {
			t.Errorf("positive control: chaos binary lacks the chaos metric %s %q", m.kind, m.text)
		}
	}
	if kinds["name"] < 4 || kinds["help"] < 4 || kinds["label"] < 1 {
		t.Fatalf("found only %v in the chaos files' metric options: %+v", kinds, chaosMetrics)
	}
	prodScrape := scrape(t, startBinary(t, filepath.Join(dir, "prod"), "REDIS_URL="+testRedis.url()).testApp)
	chaosScrape := scrape(t, startBinary(t, filepath.Join(dir, "chaos"), "REDIS_URL="+testRedis.url()).testApp)
	if prodScrape.families["shopsession_http_requests_total"] == nil || chaosScrape.families["shopsession_http_requests_total"] == nil {
		t.Fatalf("a binary's /metrics lacks the service's own metrics")
	}
	for _, m := range chaosMetrics {
		if strings.Contains(prodScrape.text, m.text) {
			t.Errorf("production /metrics contains the chaos metric %s %q", m.kind, m.text)
		}
		if !strings.Contains(chaosScrape.text, m.text) {
			t.Errorf("positive control: chaos /metrics lacks the chaos metric %s %q", m.kind, m.text)
		}
		if m.kind == "label" {
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

// metricText is a string a metric's definition puts into a binary.
type metricText struct {
	kind string // name, help or label
	text string
}

// metricTextsIn finds the metric names, help texts and label names written
// in a file's prometheus.…Opts literals and …Vec constructors.
func metricTextsIn(t *testing.T, file string) []metricText {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	fromPrometheus := func(e ast.Expr) (string, bool) {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return "", false
		}
		pkg, ok := sel.X.(*ast.Ident)
		return sel.Sel.Name, ok && pkg.Name == "prometheus"
	}
	literal := func(e ast.Expr) (string, bool) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(lit.Value)
		return s, err == nil
	}
	var out []metricText
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if name, ok := fromPrometheus(n.Type); !ok || !strings.HasSuffix(name, "Opts") {
				return true
			}
			for _, elt := range n.Elts {
				kv, ok := elt.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				switch key := kv.Key.(*ast.Ident).Name; key {
				case "Name", "Help":
					s, ok := literal(kv.Value)
					if !ok {
						t.Errorf("%s: a metric's %s is not a string literal; write it whole so the test can find it", file, key)
					}
					if key == "Name" && !strings.HasPrefix(s, "shopsession_chaos_") {
						t.Errorf("%s: chaos metric %q: want a whole name starting shopsession_chaos_", file, s)
					}
					out = append(out, metricText{kind: strings.ToLower(key), text: s})
				case "Namespace", "Subsystem":
					t.Errorf("%s: write chaos metric names whole, without %s", file, key)
				case "ConstLabels":
					if labels, ok := kv.Value.(*ast.CompositeLit); ok {
						for _, l := range labels.Elts {
							if s, ok := literal(l.(*ast.KeyValueExpr).Key); ok {
								out = append(out, metricText{kind: "label", text: s})
							}
						}
					}
				}
			}
		case *ast.CallExpr:
			if name, ok := fromPrometheus(n.Fun); ok && strings.HasPrefix(name, "New") && strings.HasSuffix(name, "Vec") && len(n.Args) == 2 {
				if labels, ok := n.Args[1].(*ast.CompositeLit); ok {
					for _, l := range labels.Elts {
						if s, ok := literal(l); ok {
							out = append(out, metricText{kind: "label", text: s})
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
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = srcDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), srcDir, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
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

// copyTreeExcept copies the package's source from src to dst — its Go files,
// go.mod, go.sum and the folders it embeds from — leaving out some top-level
// files.
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
			if rel != "." && !slices.Contains(embeddedDirs, rel) {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		topLevel := filepath.Dir(rel) == "."
		source := filepath.Ext(rel) == ".go" || rel == "go.mod" || rel == "go.sum"
		if topLevel && !source || slices.Contains(except, rel) || !d.Type().IsRegular() {
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
	needle  string // as the name appears in a binary's symbols and type names
	isConst bool
}

var envVarName = regexp.MustCompile(`^CHAOS(_[A-Z]+)*$`)

// declaredIn lists the top-level names a file declares, and the environment
// variable names among its string constants.
func declaredIn(t *testing.T, file string) ([]declaredName, []string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []declaredName
	var envVars []string
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			names = append(names, declaredName{needle: "main." + funcSymbol(decl)})
		case *ast.GenDecl:
			for _, spec := range decl.Specs {
				switch spec := spec.(type) {
				case *ast.TypeSpec:
					names = append(names, declaredName{needle: "main." + spec.Name.Name})
				case *ast.ValueSpec:
					for i, n := range spec.Names {
						if n.Name == "_" {
							continue
						}
						names = append(names, declaredName{needle: "main." + n.Name, isConst: decl.Tok == token.CONST})
						if i < len(spec.Values) {
							if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								if s, _ := strconv.Unquote(lit.Value); envVarName.MatchString(s) {
									envVars = append(envVars, s)
								}
							}
						}
					}
				}
			}
		}
	}
	return names, envVars
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
