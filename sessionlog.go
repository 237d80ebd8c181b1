package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// sessionLogKey keys the names that log lines give sessions. It is drawn at
// start and never leaves the process, so a name says nothing about its id to
// whoever reads the log: not even whether it belongs to an id they guessed,
// such as the book's "something".
var sessionLogKey = func() []byte {
	key := make([]byte, 32)
	rand.Read(key) // never fails: the runtime stops the process if it cannot
	return key
}()

// loggedSession is how a log line names a session: the first 8 bytes of the
// id's HMAC-SHA256, in hex. The id is a bearer token for the visitor's
// interests and logs go further than Redis does; the name is the same for a
// session throughout one process, so an operator can still follow one.
func loggedSession(id string) string {
	mac := hmac.New(sha256.New, sessionLogKey)
	mac.Write([]byte(id))
	return hex.EncodeToString(mac.Sum(nil)[:8])
}
