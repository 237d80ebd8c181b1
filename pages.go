package main

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"sync"
)

// The shop's pages. The templates below define them. The home page has no
// data: it is executed once. The search page, which every search renders,
// is written by writeSearchPage, which makes the template's bytes without
// text/template's reflection: html/template's escapers, applied by hand
// where the template applies them (FuzzSearchPageMatchesTemplate holds the
// two to the same bytes). Executing the template was the largest piece of
// the service's own work on a page (docs/performance.md).

// homePage is the home page, as the template makes it.
var homePage = func() []byte {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, "home", nil); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// renderSearch writes p as the search page.
func renderSearch(w http.ResponseWriter, p *searchPage) {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf)
	writeSearchPage(buf, p)
	writePage(w, buf.Bytes())
}

// writePage writes a page with its length given: the worker then flushes
// it once every middleware has counted it, on the worker's stack
// (workers.go).
func writePage(w http.ResponseWriter, page []byte) {
	h := w.Header()
	h["Content-Type"] = htmlContentType
	h["Content-Length"] = []string{strconv.Itoa(len(page))}
	w.Write(page)
}

var htmlContentType = []string{"text/html; charset=utf-8"}

// pageBuffers hold pages as they are written, already as large as a page:
// a new buffer grew five times for each page, 11.5 % of the bytes the
// process allocated under ab -c 16 (make profile). w.Write copies the page
// out, so the buffer is free again when renderSearch returns.
var pageBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 4<<10)) }}

func putPageBuffer(buf *bytes.Buffer) {
	if buf.Cap() > 64<<10 { // a page that grew it that far is not the usual one
		return
	}
	buf.Reset()
	pageBuffers.Put(buf)
}

// writeSearchPage writes the "search" template executed with p.
func writeSearchPage(b *bytes.Buffer, p *searchPage) {
	b.WriteString(head + "<title>Recommendations</title>\n</head>\n<body>\n<main>\n")
	if p.Query != "" {
		b.WriteString("<h1>Sorry, nothing found for “")
		writeText(b, p.Query)
		b.WriteString("”</h1>\n")
	} else {
		b.WriteString("<h1>Recommendations</h1>\n")
	}
	if len(p.Interests) > 0 {
		b.WriteString("<p>Since you're interested in</p>\n<ul id=\"interests\">")
		for _, interest := range p.Interests {
			b.WriteString("<li>")
			writeText(b, interest)
			b.WriteString("</li>")
		}
		b.WriteString("</ul>\n")
		switch {
		case !p.Recommender:
			b.WriteString(recommendationsStart + `<li><a href="/search?query=amazing+product">this amazing product</a></li></ul>
`)
		case len(p.Recommendations) > 0:
			b.WriteString(recommendationsStart)
			for _, r := range p.Recommendations {
				b.WriteString(`<li><a href="/search?query=`)
				writeURLQuery(b, r.Query)
				b.WriteString(`">`)
				writeText(b, r.Title)
				b.WriteString("</a></li>")
			}
			b.WriteString("</ul>\n")
		default:
			b.WriteString("<p id=\"no-recommendations\">No recommendations right now.</p>\n")
		}
	} else {
		b.WriteString("<p>No recommendations yet.</p>\n")
	}
	if p.NotRemembered {
		b.WriteString("<p id=\"not-remembered\">This search could not be remembered; please try again later.</p>\n")
	}
	b.WriteString(`<p id="session">Session ID: <code>`)
	writeText(b, p.SessionID)
	b.WriteString(`</code></p>
<nav><a href="/">Back home</a> · <a href="/search">Recommendations</a> · <a href="/reset">Reset</a></nav>
</main>
</body>
</html>
`)
}

// recommendationsStart opens the list of recommendations, the built-in
// one's and the recommender's.
const recommendationsStart = "<p>why don't you try...</p>\n<ul id=\"recommendations\">"

// writeText writes s as html/template writes a value in an element's text
// (its htmlEscaper). Each byte it replaces is ASCII, so no byte of a
// multi-byte character is one of them, and a byte-wise scan replaces what
// the escaper's scan of runes does.
func writeText(b *bytes.Buffer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var r string
		switch s[i] {
		case 0:
			r = "\uFFFD"
		case '"':
			r = "&#34;"
		case '&':
			r = "&amp;"
		case '\'':
			r = "&#39;"
		case '+':
			r = "&#43;"
		case '<':
			r = "&lt;"
		case '>':
			r = "&gt;"
		default:
			continue
		}
		b.WriteString(s[last:i])
		b.WriteString(r)
		last = i + 1
	}
	b.WriteString(s[last:])
}

// writeURLQuery writes s as html/template writes a value in a URL's query
// inside a quoted attribute (its urlEscaper, then its attrEscaper, which
// finds nothing left to escape): every byte but RFC 3986's unreserved ones
// as %xx, in lower-case hex.
func writeURLQuery(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}

// head is the "head" template.
const head = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/style.css">
`

// pages are the service's HTML. Without RECOMMENDER_URL the recommendation
// is part of the page, as in the reference: any known interest earns the
// same one. With it, the recommender's, or none when it failed.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}` + head + `{{end}}

{{define "home"}}{{template "head"}}<title>Shop</title>
</head>
<body>
<main>
<h1>Welcome to the shop</h1>
<form action="/search" method="post">
<label for="query">What are you looking for?</label>
<input id="query" name="query" type="search" maxlength="200" required>
<button type="submit">Search</button>
</form>
<nav><a href="/search">Recommendations</a> · <a href="/reset">Reset</a></nav>
</main>
</body>
</html>
{{end}}

{{define "search"}}{{template "head"}}<title>Recommendations</title>
</head>
<body>
<main>
{{with .Query}}<h1>Sorry, nothing found for “{{.}}”</h1>
{{else}}<h1>Recommendations</h1>
{{end}}{{with .Interests}}<p>Since you're interested in</p>
<ul id="interests">{{range .}}<li>{{.}}</li>{{end}}</ul>
{{if not $.Recommender}}<p>why don't you try...</p>
<ul id="recommendations"><li><a href="/search?query=amazing+product">this amazing product</a></li></ul>
{{else}}{{with $.Recommendations}}<p>why don't you try...</p>
<ul id="recommendations">{{range .}}<li><a href="/search?query={{.Query}}">{{.Title}}</a></li>{{end}}</ul>
{{else}}<p id="no-recommendations">No recommendations right now.</p>
{{end}}{{end}}{{else}}<p>No recommendations yet.</p>
{{end}}{{if .NotRemembered}}<p id="not-remembered">This search could not be remembered; please try again later.</p>
{{end}}<p id="session">Session ID: <code>{{.SessionID}}</code></p>
<nav><a href="/">Back home</a> · <a href="/search">Recommendations</a> · <a href="/reset">Reset</a></nav>
</main>
</body>
</html>
{{end}}
`))
