package chaos

import (
	"strconv"
	"strings"
)

// errorReplies are the error replies a failed command can get, byte for
// byte as redis-server 7 sends them (each provoked on a real one: see
// docs/redis-failures.md). MOVED and ASK are not here: they name the slot
// of the command's key and a node, so redirect builds them per command.
//
// What go-redis does with each: it retries LOADING, READONLY, CLUSTERDOWN,
// TRYAGAIN and MASTERDOWN when it is configured to retry, and closes the
// connection after READONLY; Script.Run answers NOSCRIPT with EVAL; OOM
// and BUSY it returns as they are; a cluster client follows MOVED (and
// reloads its slot table) and ASK (ASKING first), within MaxRedirects.
var errorReplies = map[string][]byte{
	"LOADING":     []byte("-LOADING Redis is loading the dataset in memory\r\n"),
	"READONLY":    []byte("-READONLY You can't write against a read only replica.\r\n"),
	"CLUSTERDOWN": []byte("-CLUSTERDOWN Hash slot not served\r\n"),
	"NOSCRIPT":    []byte("-NOSCRIPT No matching script. Please use EVAL.\r\n"),
	// A script without flags that writes gets this text followed by
	// " script: <sha1>, on @user_script:<line>."; SET, or a script that
	// declares its flags, gets it as it is: go-redis handles both alike.
	"OOM":        []byte("-OOM command not allowed when used memory > 'maxmemory'.\r\n"),
	"BUSY":       []byte("-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"),
	"TRYAGAIN":   []byte("-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
	"MASTERDOWN": []byte("-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"),
}

// redirects are the replies that send the client to a node for the slot of
// the command's key.
var redirects = map[string]bool{"MOVED": true, "ASK": true}

// knownReply reports whether name is an error_reply this package sends.
func knownReply(name string) bool { return errorReplies[name] != nil || redirects[name] }

// replyFor is the reply named name to a command with key key on a
// connection to addr: for MOVED and ASK, "-MOVED <slot> <addr>", the
// key's real slot and the node the command was sent to, so that a cluster
// client's redirect lands on a real node that serves the key.
func replyFor(name, key, addr string) []byte {
	if !redirects[name] {
		return errorReplies[name]
	}
	return []byte("-" + name + " " + strconv.Itoa(keySlot(key)) + " " + addr + "\r\n")
}

// keySlot is the cluster hash slot of key: CRC16 (XMODEM) of its hash tag,
// the part between the first { and the next }, when that is not empty, or
// of the whole key.
func keySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
