package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the YAML file at path over Default, applies
// environment overrides through getenv (os.Getenv when nil) and validates
// the result. Unknown or mistyped keys are errors naming the file and line;
// validation reports every problem at once, each naming its key. Every
// error wraps ErrInvalid.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: config file %s does not exist (use --config FILE; config.yaml.example documents every key)", ErrInvalid, path)
		}
		return nil, fmt.Errorf("%w: read config file: %w", ErrInvalid, err)
	}
	return Parse(data, path, getenv)
}

// Parse is Load on file contents already read; name is used in
// errors.
func Parse(data []byte, name string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, yamlError(name, err))
	}
	// A second document in the file is almost certainly a mistake.
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%w: %s:%d: a second YAML document; the configuration is one document", ErrInvalid, name, extra.Line)
	}
	cfg.applyEnv(getenv)
	cfg.normalize()
	// Problems of the file's values name the file; those of values from
	// the environment name their variable instead (envProblem).
	var inFile, inEnv []error
	for _, err := range cfg.problems() {
		if errors.As(err, new(envProblem)) {
			inEnv = append(inEnv, err)
		} else {
			inFile = append(inFile, err)
		}
	}
	switch {
	case len(inFile) > 0:
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, name, errors.Join(append(inFile, inEnv...)...))
	case len(inEnv) > 0:
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(inEnv...))
	}
	return &cfg, nil
}

var (
	yamlLineRe    = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)
	yamlUnknownRe = regexp.MustCompile(`field (\S+) not found in type \S+`)
	yamlTypeRe    = regexp.MustCompile("cannot unmarshal !!(\\w+) `(.*)` into (\\S+)")
)

// yamlError rewrites go-yaml's messages as "FILE:LINE: problem" lines, one
// per problem, with unknown fields called what they are: unknown keys.
func yamlError(name string, err error) string {
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		l = yamlUnknownRe.ReplaceAllString(l, "unknown key \"$1\"")
		l = yamlTypeRe.ReplaceAllString(l, "value \"$2\" is a $1, want $3")
		if m := yamlLineRe.FindStringSubmatch(l); m != nil {
			out = append(out, fmt.Sprintf("%s:%s: %s", name, m[1], l[len(m[0]):]))
		} else {
			out = append(out, fmt.Sprintf("%s: %s", name, strings.TrimPrefix(l, "yaml: ")))
		}
	}
	return strings.Join(out, "\n")
}

// envKeys are the keys the environment may override, with their variables.
var envKeys = []struct{ key, env string }{
	{"database.url", EnvDatabaseURL},
	{"hook.secret", EnvHookSecret},
	{"trigger.secret", EnvTriggerSecret},
	{"notify.secret", EnvNotifySecret},
	{"notify.smtp.password", EnvSMTPPassword},
}

func (c *Config) applyEnv(getenv func(string) string) {
	fields := map[string]*string{"database.url": &c.Database.URL, "hook.secret": &c.Hook.Secret,
		"trigger.secret": &c.Trigger.Secret, "notify.secret": &c.Notify.Secret, "notify.smtp.password": &c.Notify.SMTP.Password}
	for _, k := range envKeys {
		if v := getenv(k.env); v != "" {
			*fields[k.key] = v
			if c.fromEnv == nil {
				c.fromEnv = map[string]string{}
			}
			c.fromEnv[k.key] = k.env
		}
	}
}

// Source names where a key's value came from: the environment variable
// that set it ("SENTRY_DATABASE_URL"), else the key itself
// ("database.url"), for messages about the value.
func (c *Config) Source(key string) string {
	if v, ok := c.fromEnv[key]; ok {
		return v
	}
	return key
}

// envProblem is a validation problem of a value that came from the
// environment: its message names the variable and not the file.
type envProblem struct{ error }

// normalize brings values into the one form the rest of sentry expects: a
// master URL without a trailing slash.
func (c *Config) normalize() {
	c.Master.URL = strings.TrimRight(c.Master.URL, "/")
}
