# METADATA
# title: Gatehouse SSH policy
# description: |
#   Decides each SSH channel request the SSH proxy forwards. An exec of a
#   command that matches one of the target's data.access.read_commands globs
#   needs read access; every other request needs write access, which a write
#   grant gives only for the request types in its ssh_requests (default:
#   exec). Port forwarding is never allowed.
package gatehouse.ssh

import data.gatehouse.lib.access
import data.gatehouse.lib.decision as lib
import data.gatehouse.lib.text

# METADATA
# description: The decision for input.ssh; engine/policy/decision.ts checks its shape.
# scope: document
# entrypoint: true
default decision := {
	"action": "deny",
	"reasons": ["ssh policy reached no decision"],
	"mask": [],
}

decision := lib.make("ssh", {
	"access": needed,
	"denials": denials,
	"ssh_request": request_type,
})

default request_type := ""

request_type := type if {
	type := input.ssh.request
	is_string(type)
}

default command := ""

command := trim_space(line) if {
	line := input.ssh.command
	is_string(line)
}

default needed := "write"

needed := "read" if {
	request_type == "exec"
	read_command(command, read_patterns)
}

# The target's read command globs.
default read_patterns := []

read_patterns := data.access.read_commands[access.target_name]

# The helpers below take the command as an argument rather than reading the
# rule: in WASM, every reference to a rule is a lookup, and they run often.

# Globs are matched against the whole command line with no delimiters (null),
# so `*` matches any run of characters, spaces and dots included. A pattern
# equal to the command matches it as well.
read_command(cmd, patterns) if {
	matches_a_pattern(cmd, patterns)
	not has_shell_metacharacter(cmd)
}

matches_a_pattern(cmd, patterns) if cmd in patterns

matches_a_pattern(cmd, patterns) if {
	not cmd in patterns
	some pattern in patterns
	may_match(pattern, cmd)
	glob_matches(pattern, cmd)
}

# A cheap necessary condition for glob_matches: a glob that starts with a
# literal character only matches commands that start with that character.
may_match(pattern, cmd) if startswith(cmd, substring(pattern, 0, 1))

may_match(pattern, _) if contains("*?[]{}\\", substring(pattern, 0, 1))

# glob.match compiles its pattern on every call, which costs more in WASM
# than the rest of the decision. Patterns whose only wildcard is `*` are
# matched by star_match instead; other glob syntax goes to glob.match.
glob_matches(pattern, cmd) := glob.match(pattern, null, cmd) if {
	contains_glob_syntax(pattern)
} else := star_match(split(pattern, "*"), cmd)

# One body per character: cheaper in WASM than iterating over a set.
contains_glob_syntax(pattern) if contains(pattern, "?")

contains_glob_syntax(pattern) if contains(pattern, "[")

contains_glob_syntax(pattern) if contains(pattern, "]")

contains_glob_syntax(pattern) if contains(pattern, "{")

contains_glob_syntax(pattern) if contains(pattern, "}")

contains_glob_syntax(pattern) if contains(pattern, "\\")

# Whether s matches the glob whose literal text between `*`s is parts: s
# starts with the first part, ends with the last, and the parts between them
# occur in order in what is left. Done here for up to two `*`s.
star_match(parts, s) if {
	count(parts) == 1
	parts[0] == s
}

star_match(parts, s) if {
	count(parts) == 2
	ends_match(parts[0], parts[1], s)
}

star_match(parts, s) if {
	count(parts) == 3
	ends_match(parts[0], parts[2], s)
	start := count(parts[0])
	contains(substring(s, start, (count(s) - start) - count(parts[2])), parts[1])
}

star_match(parts, s) if {
	count(parts) > 3
	glob.match(concat("*", parts), null, s)
}

# s starts with first and ends with last, and they do not overlap.
ends_match(first, last, s) if {
	startswith(s, first)
	endswith(s, last)
	count(s) >= count(first) + count(last)
}

# Shell syntax that could chain, substitute or redirect commands: a command
# line containing any of these is never a read command, whatever the globs
# say. Only checked once a pattern matches, as each contains() scans the
# whole command line; one body per character is cheaper than a set in WASM.
has_shell_metacharacter(cmd) if contains(cmd, ";")

has_shell_metacharacter(cmd) if contains(cmd, "&")

has_shell_metacharacter(cmd) if contains(cmd, "|")

has_shell_metacharacter(cmd) if contains(cmd, "`")

has_shell_metacharacter(cmd) if contains(cmd, "$")

has_shell_metacharacter(cmd) if contains(cmd, ">")

has_shell_metacharacter(cmd) if contains(cmd, "<")

has_shell_metacharacter(cmd) if contains(cmd, "(")

has_shell_metacharacter(cmd) if contains(cmd, ")")

has_shell_metacharacter(cmd) if contains(cmd, "\\")

has_shell_metacharacter(cmd) if contains(cmd, "\n")

has_shell_metacharacter(cmd) if contains(cmd, "\r")

write_reason := concat("", ["exec ", text.quote(text.clip(command, 200)), " is not a read command"]) if {
	request_type == "exec"
} else := concat("", ["ssh ", text.quote(request_type), " requests need write access"])

denials contains concat("", ["ssh port forwarding is never allowed (", access.target_name, ")"]) if {
	request_type == "forward"
}

denials contains "ssh request has no type (ssh.request)" if request_type == ""
