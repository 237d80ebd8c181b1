package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAdminMaxConnsSetting: ADMIN_MAX_CONNS (-admin-max-conns) is a whole
// number from 1 to 1024, 16 by default; any other value is one usage line.
func TestAdminMaxConnsSetting(t *testing.T) {
	cfg, err := parseConfig(nil, mapGetenv(nil), io.Discard)
	if err != nil || cfg.adminConns != 16 {
		t.Errorf("default: %d, %v; want 16", cfg.adminConns, err)
	}
	if cfg, err := parseConfig([]string{"-admin-max-conns", "3"}, mapGetenv(map[string]string{"ADMIN_MAX_CONNS": "5"}), io.Discard); err != nil || cfg.adminConns != 3 {
		t.Errorf("-admin-max-conns 3 over ADMIN_MAX_CONNS=5: %d, %v", cfg.adminConns, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{env: map[string]string{"ADMIN_MAX_CONNS": "0"}, want: `invalid ADMIN_MAX_CONNS "0": want a whole number from 1 to 1024, such as 16`},
		{env: map[string]string{"ADMIN_MAX_CONNS": "-1"}, want: `invalid ADMIN_MAX_CONNS "-1"`},
		{env: map[string]string{"ADMIN_MAX_CONNS": "1025"}, want: `invalid ADMIN_MAX_CONNS "1025"`},
		{env: map[string]string{"ADMIN_MAX_CONNS": "1e3"}, want: `invalid ADMIN_MAX_CONNS "1e3"`},
		{args: []string{"-admin-max-conns", "many"}, want: `invalid -admin-max-conns "many"`},
	} {
		_, err := parseConfig(tc.args, mapGetenv(tc.env), io.Discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("env %v args %q: error %q, want one usage line containing %q", tc.env, tc.args, err, tc.want)
		}
	}

	var help bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, mapGetenv(nil), &help); !errors.Is(err, errHelpShown) || !strings.Contains(help.String(), "ADMIN_MAX_CONNS") {
		t.Errorf("-h does not mention ADMIN_MAX_CONNS (%v):\n%s", err, help.String())
	}

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SHOPSESSION_TEST_MAIN=1", "ADMIN_MAX_CONNS=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || stderr.String() != "invalid ADMIN_MAX_CONNS \"0\": want a whole number from 1 to 1024, such as 16\n" {
		t.Errorf("ADMIN_MAX_CONNS=0: exit %v, stderr %q; want status 2 and one line", err, stderr.String())
	}
}
