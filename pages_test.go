package main

import (
	"bytes"
	"strings"
	"testing"
)

// searchPageFromTemplate is the search page as html/template executes its
// template: what writeSearchPage must write.
func searchPageFromTemplate(t *testing.T, p searchPage) string {
	t.Helper()
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "search", p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func writtenSearchPage(p searchPage) string {
	var b bytes.Buffer
	writeSearchPage(&b, &p)
	return b.String()
}

// Every branch of the template, and every byte its escapers replace, in
// the text and in a link's query.
var searchPageCases = map[string]searchPage{
	"no query, no interests": {SessionID: "s"},
	"the built-in recommendation": {Query: "Apples", Interests: []string{"Pears", "Plums", "Apples"},
		SessionID: "0b0e1f7c-3a4d-4c2e-9a55-6f2f3c1d2e4f"},
	"not remembered": {Query: "x", Interests: []string{"y"}, SessionID: "s", NotRemembered: true},
	"escapes": {Query: `<script>"&'+` + "\x00" + `</script> é`, Interests: []string{`a<b`, `"q"`, "\xff\xfe"},
		SessionID: "s.-_", NotRemembered: true},
	"the recommender's": {Query: "q", Interests: []string{"a"}, SessionID: "s", Recommender: true,
		Recommendations: []recommendation{{Title: `Tom & "Jerry" <3`, Query: `a b&c=d/é?#%+~'"<>` + "\x00\xff"}, {Title: "t", Query: ""}}},
	"the recommender's none":        {Query: "q", Interests: []string{"a"}, SessionID: "s", Recommender: true},
	"the recommender, no interests": {SessionID: "s", Recommender: true},
}

func TestSearchPageMatchesTemplate(t *testing.T) {
	for name, p := range searchPageCases {
		if got, want := writtenSearchPage(p), searchPageFromTemplate(t, p); got != want {
			t.Errorf("%s: writeSearchPage wrote\n%s\nthe template makes\n%s", name, got, want)
		}
	}
}

func FuzzSearchPageMatchesTemplate(f *testing.F) {
	for _, p := range searchPageCases {
		var title, link string
		if len(p.Recommendations) > 0 {
			title, link = p.Recommendations[0].Title, p.Recommendations[0].Query
		}
		f.Add(p.Query, strings.Join(p.Interests, "\n"), p.SessionID, p.NotRemembered, p.Recommender, title, link)
	}
	f.Fuzz(func(t *testing.T, query, interests, sessionID string, notRemembered, recommender bool, title, link string) {
		p := searchPage{Query: query, SessionID: sessionID, NotRemembered: notRemembered, Recommender: recommender}
		if interests != "" {
			p.Interests = strings.Split(interests, "\n")
		}
		if title != "" || link != "" {
			p.Recommendations = []recommendation{{Title: title, Query: link}, {Title: link, Query: title}}
		}
		if got, want := writtenSearchPage(p), searchPageFromTemplate(t, p); got != want {
			t.Fatalf("%+v: writeSearchPage wrote\n%q\nthe template makes\n%q", p, got, want)
		}
	})
}

// BenchmarkSearchPage: the usual search page written, and executed from
// its template as the service rendered it before writeSearchPage.
func BenchmarkSearchPage(b *testing.B) {
	p := searchPageCases["the built-in recommendation"]
	for name, write := range map[string]func(*bytes.Buffer){
		"written":  func(buf *bytes.Buffer) { writeSearchPage(buf, &p) },
		"template": func(buf *bytes.Buffer) { pages.ExecuteTemplate(buf, "search", p) },
	} {
		b.Run(name, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				write(&buf)
			}
		})
	}
}
