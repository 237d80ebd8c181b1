package chaos

import (
	"bytes"
	"strconv"
	"strings"
)

// What the connection layer reads of go-redis's writes: the commands in
// them, each with its key, enough to decide which to fault.

// respCommand is a command as go-redis writes it.
type respCommand struct {
	Command
	args int
}

// parseRESPCommands reads the commands in one write: each an array of bulk
// strings. It stops at anything else, such as a command split across writes.
func parseRESPCommands(b []byte) []respCommand {
	var cmds []respCommand
	for len(b) > 0 {
		n, rest, ok := respLength(b, '*')
		if !ok {
			return cmds
		}
		b = rest
		cmd := respCommand{args: n}
		at := 1
		for i := range n {
			size, rest, ok := respLength(b, '$')
			if !ok || len(rest) < size+2 {
				return cmds
			}
			switch {
			case i == 0:
				cmd.Name = strings.ToLower(string(rest[:size]))
				at = keyAt(cmd.Name)
			case i == 2 && at == 3 && string(rest[:size]) == "0":
				at = 0 // a script with no keys
			case i == at:
				cmd.Key = string(rest[:size])
			}
			b = rest[size+2:]
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// respLength reads a line such as "*2\r\n" or "$3\r\n" that starts with
// kind, and returns its number and what follows it.
func respLength(b []byte, kind byte) (int, []byte, bool) {
	end := bytes.Index(b, []byte("\r\n"))
	if len(b) == 0 || b[0] != kind || end < 0 {
		return 0, nil, false
	}
	n, err := strconv.Atoi(string(b[1:end]))
	if err != nil || n < 0 {
		return 0, nil, false
	}
	return n, b[end+2:], true
}
