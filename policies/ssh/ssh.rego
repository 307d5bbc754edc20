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

decision := lib.make("ssh", request)

request := {
	"access": needed,
	"write_reason": write_reason,
	"denials": denials,
	"ssh_request": request_type,
}

default request_type := ""

request_type := input.ssh.request if is_string(input.ssh.request)

default command := ""

command := trim_space(input.ssh.command) if is_string(input.ssh.command)

default needed := "write"

needed := "read" if read_command

# Shell syntax that could chain, substitute or redirect commands: a command
# line containing any of these is never a read command, whatever the globs say.
shell_metacharacters := {";", "&", "|", "`", "$", ">", "<", "(", ")", "\\", "\n", "\r"}

read_command if {
	request_type == "exec"
	not has_shell_metacharacter
	some pattern in object.get(data.access.read_commands, access.target_name, [])
	command_matches(pattern, command)
}

# Globs are matched against the whole command line with no delimiters (null),
# so `*` matches any run of characters, spaces and dots included. glob.match
# compiles its pattern on every call (costly in WASM), so a pattern is only
# tried when the command equals it or starts with its literal prefix.
command_matches(pattern, cmd) if pattern == cmd

command_matches(pattern, cmd) if {
	pattern != cmd
	startswith(cmd, literal_prefix(pattern))
	glob.match(pattern, null, cmd)
}

# The part of a glob before its first wildcard ("" when that part holds
# other glob syntax).
literal_prefix(pattern) := prefix if {
	prefix := split(pattern, "*")[0]
	not contains_glob_syntax(prefix)
} else := ""

contains_glob_syntax(s) if {
	some character in {"?", "[", "]", "{", "}", "\\"}
	contains(s, character)
}

has_shell_metacharacter if {
	some character in shell_metacharacters
	contains(command, character)
}

write_reason := concat("", ["exec ", text.quote(text.clip(command, 200)), " is not a read command"]) if {
	request_type == "exec"
} else := concat("", ["ssh ", text.quote(request_type), " requests need write access"])

denials contains concat("", ["ssh port forwarding is never allowed (", access.target_name, ")"]) if {
	request_type == "forward"
}

denials contains "ssh request has no type (ssh.request)" if request_type == ""
