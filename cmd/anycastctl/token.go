package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// envTokenFile names the file holding the API token, the other way to
// give it without showing it in ps.
const envTokenFile = "ANYCASTCTL_TOKEN_FILE" //nolint:gosec // the name of an environment variable, not a credential

// resolveToken picks the API token: -token, else -token-file, else
// $ANYCASTCTL_TOKEN, else $ANYCASTCTL_TOKEN_FILE. A flag beats the
// environment; a token on the command line is visible to every user of the
// host (ps), a file or the environment is not.
func resolveToken(e *env, flagToken, flagFile string) (string, error) {
	switch {
	case flagToken != "" && flagFile != "":
		return "", usagef("use -token or -token-file, not both")
	case flagToken != "":
		return flagToken, nil
	case flagFile != "":
		return readTokenFile("-token-file", flagFile)
	}
	if t := e.getenv(envToken); t != "" {
		return t, nil
	}
	if f := e.getenv(envTokenFile); f != "" {
		return readTokenFile("$"+envTokenFile, f)
	}
	return "", usagef("no API token: use -token or set $%s, or read it from a file with -token-file or $%s",
		envToken, envTokenFile)
}

// readTokenFile returns the first token of a file written as anycastd's
// api.token_file: one token a line, blank lines and # comments skipped
// (DATA/api.token of anycastd standalone is one). A file that cannot be
// read is a mistake on the command line.
func readTokenFile(what, path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the file the operator names
	if err != nil {
		return "", usageError{fmt.Errorf("%s: %w", what, err)}
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", usageError{fmt.Errorf("%s %s: %w", what, path, err)}
	}
	return "", usageError{fmt.Errorf("%s %s: %w", what, path, errors.New("no token in the file"))}
}
