package main

import "testing"

// The fixtures are the output of the book's command, verbatim but for the
// port, captured against this service with a real redis-server:
//
//	echo "query=Apples" > query.txt
//	ab -c 1 -t 10 -H "Cookie: sessionID=something" -H "Content-type: application/x-www-form-urlencoded" -p query.txt http://127.0.0.1:PORT/search
//
// against the production build (book-steady.txt) and the chaos build with
// CHAOS=error (book-experiment-2.txt), where without -l ab counts every page
// of the other length as failed, though none is a non-2xx.
func TestParseABOfTheBookCommand(t *testing.T) {
	for _, tc := range []struct {
		file string
		want abResult
	}{
		{"book-steady.txt", abResult{Complete: 26818, RequestsPerS: 2681.80, MeanMS: 0.373}},
		{"book-experiment-2.txt", abResult{Complete: 27829, Failed: 13914, FailedLength: 13914, RequestsPerS: 2782.81, MeanMS: 0.359}},
	} {
		got, err := parseAB(fixture(t, tc.file))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if got.Complete != tc.want.Complete || got.Failed != tc.want.Failed || got.FailedLength != tc.want.FailedLength ||
			got.FailedConnect != 0 || got.FailedReceive != 0 || got.FailedExcept != 0 ||
			got.Non2xx != tc.want.Non2xx || got.RequestsPerS != tc.want.RequestsPerS || got.MeanMS != tc.want.MeanMS {
			t.Errorf("%s: parsed %+v, want %+v", tc.file, got, tc.want)
		}
	}
}
