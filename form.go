package main

import (
	"bytes"
	"net/http"
	"net/url"
	"sync"
)

// searchForm parses the search's form as r.ParseForm does, and fails where
// it fails, without building r.Form: for the POST of a form body (its
// Content-Type already checked) it reads the body into a pooled buffer and
// parses it alone, where ParseForm also parsed the URL's empty query into a
// map of its own, merged the two into a third, and read the body with
// io.ReadAll's 512-byte start. Anything else goes to ParseForm itself.
func searchForm(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost || r.ContentLength == 0 {
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		if r.Method == http.MethodPost {
			return r.PostForm, nil
		}
		return r.Form, nil
	}
	buf := formBuffers.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		formBuffers.Put(buf)
	}()
	// r.Body is the handler's http.MaxBytesReader: it bounds the read, as
	// it bounds ParseForm's.
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return nil, err
	}
	posted, err := url.ParseQuery(buf.String())
	if err != nil {
		return nil, err
	}
	if r.URL != nil && r.URL.RawQuery != "" {
		// ParseForm refuses a malformed URL query even for a POST.
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			return nil, err
		}
	}
	return posted, nil
}

var formBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 512)) }}
