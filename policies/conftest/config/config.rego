# conftest checks for the Gatehouse gateway configuration (gatehouse.yaml).
#
#   conftest test --policy policies/conftest --namespace gatehouse.conftest.config examples/gatehouse.yaml
#
# Every message names the offending target or key and says how to fix it.
# Messages never repeat a secret value, only where it was found.
package gatehouse.conftest.config

# A secret reference is the whole value, nothing around it.
_env_reference := `^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$`

_file_reference := `^\$\{file:[^{}]+\}$`

# Keys that hold a secret wherever they appear in the document, e.g. password,
# db_password, client_secret, access_token, private_key, apiKey, and the
# gateway's own HMAC keys (masking.hash_key, approvals.seal_key).
_secret_key := `(?i)(password|passwd|passphrase|secret|token|private_?key|api_?key|hash_?key|seal_?key)$`

# Keys under a target's `credentials` that name who the gateway is, or where the
# secret goes, and are not secret themselves. Every other value under
# `credentials` must be a reference: unknown keys fail closed.
_non_secret_credential_keys := {"username", "user", "header"}

_fix := "use a ${env:NAME} or ${file:path} reference"

default targets := []

targets := input.targets if is_array(input.targets)

# Sessions on every target are recorded (AU-14).
# METADATA
# title: deny
# description: >-
#   conftest denials for gatehouse.yaml checks, one message per problem.
#   The conftest query; each message names the offending key and the fix.
# scope: document
# entrypoint: true
deny contains msg if {
	some i, target in targets
	object.get(target, ["recording", "enabled"], null) != true
	msg := sprintf(
		"%s: %s; set recording.enabled: true, every target must record its sessions",
		[_target_label(i), _recording_state(target)],
	)
}

# No credential under a target is written in plain text.
deny contains msg if {
	some i, target in targets
	credentials := object.get(target, "credentials", {})
	walk(credentials, [path, value])
	_scalar(value)
	not _non_secret_credential_key(path)
	not _reference(value)
	msg := sprintf(
		"%s: %s is written in plain text; %s",
		[_target_label(i), _location(array.concat(["credentials"], path)), _fix],
	)
}

# No secret-named key anywhere else in the document is written in plain text.
deny contains msg if {
	walk(input, [path, value])
	count(path) > 0
	key := path[count(path) - 1]
	is_string(key)
	regex.match(_secret_key, key)
	_scalar(value)
	not _reference(value)
	not _under_target_credentials(path)
	msg := sprintf("%s is a secret written in plain text; %s", [_location(path), _fix])
}

# A prod target holds requests for a human's approval (AC-3, AC-6).
deny contains msg if {
	some i, target in targets
	_prod(target)
	not is_object(object.get(target, "approval", null))
	msg := sprintf(
		"%s is labelled env: prod but has no approval block; add approval: {mode: hold} (or mode: ticket)",
		[_target_label(i)],
	)
}

deny contains msg if {
	some i, target in targets
	_prod(target)
	is_object(target.approval)
	not object.get(target.approval, "mode", null) in {"hold", "ticket"}
	msg := sprintf(
		"%s is labelled env: prod but approval.mode is %s; set approval.mode to hold or ticket",
		[_target_label(i), _shown(object.get(target.approval, "mode", null))],
	)
}

# Target names are unique: policy, audit and recordings refer to targets by name.
deny contains msg if {
	some name in {target.name | some target in targets}
	places := [sprintf("targets[%d]", [i]) | some i, target in targets; target.name == name]
	count(places) > 1
	msg := sprintf(
		"target name %s is used by %d targets (%s); give each target a unique name",
		[_shown(name), count(places), concat(", ", places)],
	)
}

# Warnings: settings that are right for a laptop and wrong for production.
# METADATA
# title: warn
# description: >-
#   conftest warnings for gatehouse.yaml: allowed, but weaker evidence or
#   trust than production wants. Each names the key and the fix.
# scope: document
# entrypoint: true
warn contains msg if {
	input.identity.dev_issuer.enabled == true
	msg := concat("", [
		"identity.dev_issuer.enabled is true: tokens minted by `gatehouse token` are trusted; ",
		"development only, configure identity.issuers for production",
	])
}

# Without signed checkpoints, truncating the audit trail's tail goes unnoticed (AU-9).
warn contains msg if {
	not is_object(object.get(input, ["audit", "checkpoint"], null))
	msg := concat("", [
		"audit.checkpoint is not set: the audit chain is not signed; ",
		"set audit.checkpoint.key_file (gatehouse audit keygen)",
	])
}

# A decision whose audit event is lost still goes through on such a target (AU-5).
warn contains msg if {
	some i, target in targets
	target.audit.fail_open == true
	msg := sprintf(
		"%s has audit.fail_open: true: its decisions stand when their audit event cannot be written",
		[_target_label(i)],
	)
}

# Such a target goes on unrecorded when the recorder cannot keep entries (AU-5, AU-14).
warn contains msg if {
	some i, target in targets
	target.recording.fail_open == true
	msg := sprintf(
		"%s has recording.fail_open: true: its sessions go on unrecorded when the recorder cannot keep entries",
		[_target_label(i)],
	)
}

_target_label(i) := sprintf("target %q (targets[%d])", [targets[i].name, i]) if {
	is_string(targets[i].name)
} else := sprintf("targets[%d] (no name)", [i])

_recording_state(target) := sprintf("recording.enabled is %s", [json.marshal(target.recording.enabled)]) if {
	is_object(target.recording)
	"enabled" in object.keys(target.recording)
} else := "recording.enabled is not set"

_shown(value) := "not set" if value == null

else := json.marshal(value)

_prod(target) if {
	is_string(target.labels.env)
	lower(target.labels.env) == "prod"
}

_scalar(value) if is_string(value)

_scalar(value) if is_number(value)

_reference(value) if {
	is_string(value)
	regex.match(_env_reference, value)
}

_reference(value) if {
	is_string(value)
	regex.match(_file_reference, value)
}

_non_secret_credential_key(path) if {
	count(path) > 0
	path[count(path) - 1] in _non_secret_credential_keys
}

_under_target_credentials(path) if {
	path[0] == "targets"
	path[2] == "credentials"
}

_location(path) := trim_prefix(concat("", [_segment(p) | some p in path]), ".")

_segment(p) := sprintf("[%d]", [p]) if is_number(p)

_segment(p) := concat("", [".", p]) if is_string(p)
