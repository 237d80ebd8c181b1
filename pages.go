package main

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"sync"
)

// The shop's pages: their templates and the renderers that execute them.

func (a *app) render(w http.ResponseWriter, name string, data any) {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer putPageBuffer(buf)
	if err := pages.ExecuteTemplate(buf, name, data); err != nil {
		a.logger.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Type"] = htmlContentType
	h["Content-Length"] = []string{strconv.Itoa(buf.Len())}
	// With its length given, the worker flushes the page once every
	// middleware has counted it, on the worker's stack (workers.go).
	w.Write(buf.Bytes())
}

var htmlContentType = []string{"text/html; charset=utf-8"}

// pageBuffers hold pages as they are executed, already as large as a page:
// a new buffer grew five times for each page, 11.5 % of the bytes the
// process allocated under ab -c 16 (make profile). w.Write copies the page
// out, so the buffer is free again when render returns.
var pageBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 4<<10)) }}

func putPageBuffer(buf *bytes.Buffer) {
	if buf.Cap() > 64<<10 { // a page that grew it that far is not the usual one
		return
	}
	buf.Reset()
	pageBuffers.Put(buf)
}

// pages are the service's HTML. Without RECOMMENDER_URL the recommendation
// is part of the page, as in the reference: any known interest earns the
// same one. With it, the recommender's, or none when it failed.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/style.css">
{{end}}

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
