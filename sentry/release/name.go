package release

import (
	"errors"
	"fmt"
)

// ErrBadName is wrapped by ValidateName's errors.
var ErrBadName = errors.New("invalid release name")

// ValidateName accepts release names such as "1.5", "115.0b3" or
// "2024.06-esr": 1 to 64 characters of letters, digits, '.', '_', '+' and
// '-', not starting with '.' or '-'. A release name is substituted into
// directory paths and URLs, so anything that could step out of the release
// directory ('/', '\', "..", '%', control characters) is refused.
func ValidateName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w %q: want 1 to 64 characters", ErrBadName, name)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w %q: must not start with %q", ErrBadName, name, name[0])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '+' || c == '-'
		if !ok {
			return fmt.Errorf("%w %q: character %q is not allowed (letters, digits, . _ + - only)", ErrBadName, name, c)
		}
	}
	return nil
}
