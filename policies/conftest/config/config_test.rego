package gatehouse.conftest.config_test

import data.gatehouse.conftest.config

_prod_db := {
	"name": "orders-db",
	"kind": "postgres",
	"labels": {"env": "prod"},
	"upstream": {"address": "127.0.0.1:5432", "database": "orders"},
	"credentials": {"username": "gatehouse_orders", "password": "${env:ORDERS_DB_PASSWORD}"},
	"recording": {"enabled": true},
	"approval": {"mode": "hold", "timeout_seconds": 300},
}

_staging_api := {
	"name": "crm-staging",
	"kind": "http",
	"labels": {"env": "staging"},
	"upstream": {"address": "http://127.0.0.1:18080"},
	"credentials": {"header": "Authorization", "value": "${file:/run/secrets/crm-token}"},
	"recording": {"enabled": true},
}

_config(targets) := {
	"listeners": {"api": {"address": "127.0.0.1:8181"}},
	"policy": {"bundle": {"source": "../build/bundle.tar.gz"}, "timeout_ms": 50},
	"store": {"sqlite": {"path": "../.demo/gatehouse.db"}},
	"targets": targets,
}

# _patched(target, op, path, value) is target with one JSON patch operation applied.
_patched(target, op, path, value) := json.patch(target, [{"op": op, "path": path, "value": value}])

# _one(denials, fragment) holds when exactly one message mentions fragment.
_one(denials, fragment) if count([msg | some msg in denials; contains(msg, fragment)]) == 1

_fix := "use a ${env:NAME} or ${file:path} reference"

# --- a good config --------------------------------------------------------

test_good_config_passes if {
	denials := config.deny with input as _config([_prod_db, _staging_api])
	count(denials) == 0
}

test_config_without_targets_passes if {
	denials := config.deny with input as json.remove(_config([]), ["targets"])
	count(denials) == 0
}

# --- recording.enabled ----------------------------------------------------

test_recording_disabled_denied if {
	target := _patched(_prod_db, "replace", "/recording/enabled", false)
	denials := config.deny with input as _config([target])
	denials == {concat("", [
		"target \"orders-db\" (targets[0]): recording.enabled is false; ",
		"set recording.enabled: true, every target must record its sessions",
	])}
}

test_recording_missing_denied if {
	denials := config.deny with input as _config([json.remove(_staging_api, ["recording"])])
	_one(denials, "target \"crm-staging\" (targets[0]): recording.enabled is not set; set recording.enabled: true")
}

test_recording_string_true_denied if {
	target := _patched(_prod_db, "replace", "/recording/enabled", "true")
	denials := config.deny with input as _config([target])
	_one(denials, "recording.enabled is \"true\"")
}

test_recording_unnamed_target_denied if {
	denials := config.deny with input as _config([json.remove(_prod_db, ["name", "recording"])])
	_one(denials, "targets[0] (no name): recording.enabled is not set")
}

test_recording_enabled_allowed if {
	denials := config.deny with input as _config([_prod_db])
	every msg in denials {
		not contains(msg, "recording")
	}
}

# --- credentials under a target -------------------------------------------

test_plaintext_password_denied if {
	target := _patched(_prod_db, "replace", "/credentials/password", "hunter2")
	denials := config.deny with input as _config([target])
	denials == {sprintf("target \"orders-db\" (targets[0]): credentials.password is written in plain text; %s", [_fix])}
}

test_plaintext_message_never_shows_the_secret if {
	target := _patched(_prod_db, "replace", "/credentials/password", "hunter2")
	denials := config.deny with input as _config([target])
	count(denials) > 0
	every msg in denials {
		not contains(msg, "hunter2")
	}
}

test_plaintext_numeric_password_denied if {
	target := _patched(_prod_db, "replace", "/credentials/password", 123456)
	denials := config.deny with input as _config([target])
	_one(denials, "credentials.password is written in plain text")
}

test_plaintext_header_value_denied if {
	target := _patched(_staging_api, "replace", "/credentials/value", "Bearer abc")
	denials := config.deny with input as _config([target])
	_one(denials, "target \"crm-staging\" (targets[0]): credentials.value is written in plain text")
}

test_reference_inside_text_denied if {
	target := _patched(_staging_api, "replace", "/credentials/value", "Bearer ${env:CRM_TOKEN}")
	denials := config.deny with input as _config([target])
	_one(denials, "credentials.value is written in plain text")
}

test_malformed_references_denied if {
	accepted := [value |
		some value in ["${env:}", "${env:1ABC}", "${file:}", "${vault:secret/x}", "$ORDERS_DB_PASSWORD"]
		target := _patched(_prod_db, "replace", "/credentials/password", value)
		denials := config.deny with input as _config([target])
		not _one(denials, "credentials.password is written in plain text")
	]
	accepted == []
}

test_unknown_credential_key_denied if {
	target := _patched(_prod_db, "add", "/credentials/pass", "hunter2")
	denials := config.deny with input as _config([target])
	_one(denials, "credentials.pass is written in plain text")
}

test_nested_credential_denied if {
	target := _patched(_prod_db, "add", "/credentials/tls", {"key": "-----BEGIN"})
	denials := config.deny with input as _config([target])
	_one(denials, "credentials.tls.key is written in plain text")
}

test_credentials_as_plain_string_denied if {
	target := _patched(_prod_db, "replace", "/credentials", "user:hunter2")
	denials := config.deny with input as _config([target])
	_one(denials, "target \"orders-db\" (targets[0]): credentials is written in plain text")
}

test_credential_references_allowed if {
	target := json.patch(_prod_db, [
		{"op": "replace", "path": "/credentials/password", "value": "${file:../.demo/orders.pw}"},
		{"op": "add", "path": "/credentials/private_key", "value": "${env:ORDERS_KEY}"},
	])
	denials := config.deny with input as _config([target, _staging_api])
	count(denials) == 0
}

test_non_secret_credential_keys_allowed if {
	target := _patched(_prod_db, "add", "/credentials/user", "ops")
	denials := config.deny with input as _config([target, _staging_api])
	count(denials) == 0
}

test_plaintext_credential_reported_once if {
	target := _patched(_prod_db, "replace", "/credentials/password", "hunter2")
	denials := config.deny with input as _config([target])
	count(denials) == 1
}

# --- secret-named keys anywhere in the document ---------------------------

test_plaintext_secret_key_outside_targets_denied if {
	doc := _patched(_config([_prod_db]), "add", "/listeners/api/admin_token", "t0k3n")
	denials := config.deny with input as doc
	denials == {sprintf("listeners.api.admin_token is a secret written in plain text; %s", [_fix])}
}

test_plaintext_secret_key_spellings_denied if {
	keys := [
		"password", "db_password", "passwd", "client_secret", "clientSecret",
		"access_token", "private_key", "apiKey", "hash_key", "seal_key",
	]
	missed := [key |
		some key in keys
		doc := _patched(_config([_prod_db]), "add", "/store/sqlite", {key: "x"})
		denials := config.deny with input as doc
		not _one(denials, sprintf("store.sqlite.%s is a secret written in plain text", [key]))
	]
	missed == []
}

test_plaintext_secret_key_in_target_outside_credentials_denied if {
	target := _patched(_prod_db, "add", "/upstream/password", "hunter2")
	denials := config.deny with input as _config([target])
	_one(denials, "targets[0].upstream.password is a secret written in plain text")
}

test_secret_key_reference_allowed if {
	doc := json.patch(_config([_prod_db]), [
		{"op": "add", "path": "/listeners/api/admin_token", "value": "${env:GATEHOUSE_ADMIN_TOKEN}"},
		{"op": "add", "path": "/store/postgres", "value": {"password": "${file:/run/secrets/pg}"}},
	])
	denials := config.deny with input as doc
	count(denials) == 0
}

test_non_secret_keys_that_mention_a_secret_word_allowed if {
	doc := json.patch(_config([_prod_db]), [
		{"op": "add", "path": "/listeners/api/token_ttl_seconds", "value": 300},
		{"op": "add", "path": "/listeners/api/secret_rotation", "value": "daily"},
		{"op": "add", "path": "/listeners/api/max_tokens", "value": 4096},
	])
	denials := config.deny with input as doc
	count(denials) == 0
}

# --- approval on prod targets ---------------------------------------------

test_prod_without_approval_denied if {
	denials := config.deny with input as _config([json.remove(_prod_db, ["approval"])])
	denials == {concat("", [
		"target \"orders-db\" (targets[0]) is labelled env: prod but has no approval block; ",
		"add approval: {mode: hold} (or mode: ticket)",
	])}
}

test_prod_with_unknown_approval_mode_denied if {
	target := _patched(_prod_db, "replace", "/approval/mode", "auto")
	denials := config.deny with input as _config([target])
	denials == {concat("", [
		"target \"orders-db\" (targets[0]) is labelled env: prod but approval.mode is \"auto\"; ",
		"set approval.mode to hold or ticket",
	])}
}

test_prod_approval_without_mode_denied if {
	denials := config.deny with input as _config([json.remove(_prod_db, ["approval/mode"])])
	_one(denials, "approval.mode is not set; set approval.mode to hold or ticket")
}

test_prod_label_in_capitals_denied if {
	target := _patched(json.remove(_prod_db, ["approval"]), "replace", "/labels/env", "PROD")
	denials := config.deny with input as _config([target])
	_one(denials, "is labelled env: prod but has no approval block")
}

test_prod_with_hold_allowed if {
	denials := config.deny with input as _config([_prod_db])
	count(denials) == 0
}

test_prod_with_ticket_allowed if {
	target := _patched(_prod_db, "replace", "/approval/mode", "ticket")
	denials := config.deny with input as _config([target])
	count(denials) == 0
}

test_non_prod_without_approval_allowed if {
	target := json.remove(_prod_db, ["approval", "labels"])
	denials := config.deny with input as _config([target, _staging_api])
	count(denials) == 0
}

# --- unique target names --------------------------------------------------

test_duplicate_target_names_denied if {
	twin := object.union(_staging_api, {"name": "orders-db"})
	denials := config.deny with input as _config([_prod_db, _staging_api, twin])
	denials == {concat("", [
		"target name \"orders-db\" is used by 2 targets (targets[0], targets[2]); ",
		"give each target a unique name",
	])}
}

test_unique_target_names_allowed if {
	denials := config.deny with input as _config([_prod_db, _staging_api])
	every msg in denials {
		not contains(msg, "unique name")
	}
}

test_dev_issuer_warned if {
	some msg in config.warn with input as {"identity": {"dev_issuer": {"enabled": true, "key_file": "k"}}}
	contains(msg, "identity.dev_issuer.enabled is true")
}

test_dev_issuer_disabled_not_warned if {
	warnings := config.warn with input as {"identity": {"dev_issuer": {"enabled": false}}}
	every msg in warnings {
		not contains(msg, "dev_issuer")
	}
}

test_missing_checkpoint_warned if {
	some msg in config.warn with input as {}
	startswith(msg, "audit.checkpoint is not set")
}

test_checkpoint_set_not_warned if {
	warnings := config.warn with input as {"audit": {"checkpoint": {"key_file": "k"}}}
	count(warnings) == 0
}

test_fail_open_target_warned if {
	some msg in config.warn with input as {"targets": [{"name": "db", "audit": {"fail_open": true}}]}
	startswith(msg, `target "db" (targets[0]) has audit.fail_open: true: `)
}

test_recording_fail_open_target_warned if {
	some msg in config.warn with input as {"targets": [{"name": "db", "recording": {"enabled": true, "fail_open": true}}]}
	startswith(msg, `target "db" (targets[0]) has recording.fail_open: true: `)
}

test_recording_fail_closed_target_not_warned if {
	warnings := config.warn with input as {"targets": [{"name": "db", "recording": {"enabled": true}}]}
	every warning in warnings {
		not contains(warning, "recording.fail_open")
	}
}
