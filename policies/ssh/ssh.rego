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

# A read pattern is matched argument by argument: the command line split on
# spaces has as many arguments as the pattern, each equal to the pattern's
# word or matched by its glob (`*`, `?`, `[...]`, `{a,b}`; a glob does not
# cross "/"). What a glob matches must not be an option (an extra
# `--vacuum-time=1s` or `-H host` slipped into "journalctl -u *" would make
# a read delete or reach elsewhere) unless the pattern's word starts with
# "-" itself, and must not climb a directory (".."). A command line with
# shell syntax, quotes or control characters is never a read command: the
# shell would not split it as the pattern is split. When the caller sends
# argv too, it must be that split: an argv run in place of the command
# must be the one decided.
read_command(cmd, patterns) if {
	not has_shell_syntax(cmd)
	args := arguments(cmd)
	argv_is(args)
	some pattern in patterns
	matches_pattern(arguments(pattern), args)
}

arguments(line) := [arg | some arg in split(line, " "); arg != ""]

argv_is(_) if not input.ssh.argv

argv_is(args) if input.ssh.argv == args

matches_pattern(words, args) if {
	count(words) == count(args)
	every i, word in words {
		word_matches(word, args[i])
	}
}

word_matches(word, arg) if word == arg

word_matches(word, arg) if {
	word != arg
	may_stand_for(word, arg)
	glob_matches(word, arg)
}

may_stand_for(_, arg) if {
	not startswith(arg, "-")
	not climbs(arg)
}

may_stand_for(word, arg) if {
	startswith(word, "-")
	not climbs(arg)
}

climbs("..")

climbs(arg) if startswith(arg, "../")

climbs(arg) if endswith(arg, "/..")

climbs(arg) if contains(arg, "/../")

# glob.match compiles its pattern on every call, which costs more in WASM
# than the rest of the decision: a word that is just `*` matches any one
# argument without it.
glob_matches("*", _)

glob_matches(word, arg) if {
	word != "*"
	glob.match(word, ["/"], arg)
}

# Shell syntax that could chain, substitute, redirect, expand, quote or
# comment out (`#`) part of a command line, and control characters (NUL
# ends the line a server runs, tabs split it where spaces do not).
has_shell_syntax(cmd) if regex.match(`[;&|$<>()\\'"#~*?\[\]{}!\x00-\x1f\x7f]`, cmd)

has_shell_syntax(cmd) if contains(cmd, "`")

write_reason := concat("", ["exec ", text.quote(text.clip(command, 200)), " is not a read command"]) if {
	request_type == "exec"
} else := concat("", ["ssh ", text.quote(request_type), " requests need write access"])

denials contains concat("", ["ssh port forwarding is never allowed (", access.target_name, ")"]) if {
	request_type == "forward"
}

denials contains "ssh request has no type (ssh.request)" if request_type == ""
