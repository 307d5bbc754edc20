package gatehouse.ssh_test

import data.gatehouse.ssh

identity(sub, groups) := {
	"sub": sub, "iss": "https://idp.example.com", "groups": groups,
	"agent": true, "act": null, "claims": {},
}

sre := identity("agent:sre-copilot", ["sre-agents"])

ci := identity("ci:web-deploy", ["ci-deployers"])

web_prod := {"name": "web-prod", "kind": "ssh", "labels": {"env": "prod"}}

request(who, type, command) := {
	"identity": who,
	"target": web_prod,
	"session": {"id": "sess-3"},
	"now_ns": 1767225600000000000,
	"approval": null,
	"ssh": {"user": "deploy", "request": type, "command": command, "argv": words(command)},
}

words(command) := [arg | some arg in split(command, " "); arg != ""]

exec(who, command) := request(who, "exec", command)

prod_shell := {"groups": ["sre-leads"], "min": 2, "ttl_seconds": 600, "mode": "hold"}

prod_shell_reason := "approval required by rule prod-shell: Interactive shells on production hosts need two approvers."

test_read_command_is_allowed_without_approval if {
	ssh.decision == {
		"action": "allow",
		"reasons": ["allowed by grant sre-agents-operate: read access to web-prod"],
		"mask": [],
	} with input as exec(sre, "uptime")
}

test_read_globs_match_argument_by_argument if {
	every command in [
		"uptime", "df -h", "  df -h  ", "df  -h",
		"systemctl status nginx.service",
		"systemctl status user@1000.service",
		"journalctl -u nginx.service --since 2026-01-01",
		"journalctl -u app.worker --since yesterday",
	] {
		d := ssh.decision with input as exec(sre, command)
		d.reasons == ["allowed by grant sre-agents-operate: read access to web-prod"]
	}
}

test_other_commands_are_writes if {
	every command in [
		"uptime; reboot", "df -h && rm -rf /", "systemctl status $(reboot)",
		"systemctl status `reboot`", "systemctl status nginx | tee /etc/motd",
		"systemctl status x > /etc/passwd", "systemctl status x\nreboot",
		"df -hx", "systemctl restart nginx", "journalctl -u nginx",
		"sudo uptime", "",
		# A glob stands for one argument, never an option or more than one.
		"systemctl status nginx.service --no-pager -n 50",
		"journalctl -u nginx.service --since 2026-01-01 10:00",
		"journalctl -u nginx --vacuum-time=1s --since today",
		"journalctl -u nginx --since today --cursor-file=/home/deploy/.bashrc",
		"journalctl -u --rotate --since now", "systemctl status -H root@10.0.0.9",
		# Shell syntax the pattern's split would not see.
		"journalctl -u x --since now # --vacuum-files=1", "systemctl status 'a b'",
		"systemctl status \"x\"", "systemctl status ~root", "systemctl status n*",
		"systemctl status {a,b}", "systemctl status x\u0000", "df\t-h", "systemctl status !x",
	] {
		d := ssh.decision with input as exec(sre, command)
		d.reasons == ["allowed by grant sre-agents-operate: write access to web-prod", prod_shell_reason]
	}
}

test_long_commands_are_clipped_in_reasons if {
	command := concat("", ["echo ", concat("", ["0123456789" | some _ in numbers.range(1, 30)])])
	d := ssh.decision with input as exec(identity("gina@example.com", ["oncall"]), command)
		with data.access.grants as read_grant
	reason := d.reasons[0]
	endswith(reason, "...\" is not a read command")
	count(reason) < 300
}

test_write_command_on_prod_needs_two_approvers if {
	ssh.decision == {
		"action": "approve",
		"reasons": ["allowed by grant sre-agents-operate: write access to web-prod", prod_shell_reason],
		"mask": [],
		"approval": prod_shell,
	} with input as exec(sre, "systemctl restart nginx")
}

test_shell_on_prod_needs_two_approvers if {
	d := ssh.decision with input as request(sre, "shell", "")
	d.action == "approve"
	d.approval == prod_shell
}

test_shell_once_approved_is_allowed if {
	ssh.decision == {
		"action": "allow",
		"reasons": [
			"allowed by grant sre-agents-operate: write access to web-prod",
			"approved by approval apr-2 under rule prod-shell",
		],
		"mask": [],
	} with input as object.union(request(sre, "shell", ""), {"approval": {"id": "apr-2", "status": "approved"}})
}

test_shell_is_denied_when_the_grant_does_not_list_it if {
	ssh.decision == {
		"action": "deny",
		"reasons": ["grant ci-deploy does not allow ssh shell requests on web-prod"],
		"mask": [],
	} with input as request(ci, "shell", "")
}

test_sftp_listed_in_the_grant_needs_approval_on_prod if {
	d := ssh.decision with input as request(ci, "sftp", "")
	d.action == "approve"
	d.reasons == ["allowed by grant ci-deploy: write access to web-prod", prod_shell_reason]
}

test_sftp_not_listed_is_denied if {
	d := ssh.decision with input as request(sre, "sftp", "")
	d.reasons == ["grant sre-agents-operate does not allow ssh sftp requests on web-prod"]
}

test_forward_is_always_denied if {
	ssh.decision == {
		"action": "deny",
		"reasons": [
			"grant sre-agents-operate does not allow ssh forward requests on web-prod",
			"ssh port forwarding is never allowed (web-prod)",
		],
		"mask": [],
	} with input as request(sre, "forward", "")
}

test_forward_is_denied_even_when_a_grant_lists_it if {
	grants := [{
		"name": "fwd", "groups": ["sre-agents"], "targets": ["web-prod"],
		"access": "write", "ssh_requests": ["forward"],
	}]
	d := ssh.decision with input as request(sre, "forward", "") with data.access.grants as grants
	d.reasons == ["ssh port forwarding is never allowed (web-prod)"]
}

test_unlisted_request_types_are_denied if {
	d := ssh.decision with input as request(sre, "x11", "")
	d.reasons == ["grant sre-agents-operate does not allow ssh x11 requests on web-prod"]
}

test_missing_request_type_is_denied if {
	d := ssh.decision with input as object.union(exec(sre, "uptime"), {"ssh": {"request": null}})
	d.action == "deny"
	"ssh request has no type (ssh.request)" in d.reasons
}

test_write_grant_without_ssh_requests_permits_exec_only if {
	grants := [{"name": "ops", "groups": ["sre-agents"], "targets": ["web-prod"], "access": "write"}]
	exec_d := ssh.decision with input as exec(sre, "systemctl restart nginx") with data.access.grants as grants
	exec_d.action == "approve"
	shell_d := ssh.decision with input as request(sre, "shell", "") with data.access.grants as grants
	shell_d.reasons == ["grant ops does not allow ssh shell requests on web-prod"]
}

read_grant := [{"name": "oncall-read-web", "groups": ["oncall"], "targets": ["web-prod"], "access": "read"}]

test_read_grant_permits_read_commands if {
	d := ssh.decision with input as exec(identity("gina@example.com", ["oncall"]), "df -h")
		with data.access.grants as read_grant
	d.action == "allow"
	d.reasons == ["allowed by grant oncall-read-web: read access to web-prod"]
}

test_read_grant_denies_write_commands_and_shells if {
	who := identity("gina@example.com", ["oncall"])
	write := ssh.decision with input as exec(who, "systemctl restart nginx") with data.access.grants as read_grant
	write.reasons == [concat("", [
		"group oncall has read-only access to web-prod; ",
		"exec \"systemctl restart nginx\" is not a read command",
	])]
	shell := ssh.decision with input as request(who, "shell", "") with data.access.grants as read_grant
	shell.reasons == ["group oncall has read-only access to web-prod; ssh \"shell\" requests need write access"]
}

test_targets_without_read_commands_have_none if {
	target := {"name": "web-staging", "kind": "ssh", "labels": {"env": "staging"}}
	grants := [{"name": "ops", "groups": ["sre-agents"], "targets": ["web-staging"], "access": "read"}]
	d := ssh.decision with input as object.union(exec(sre, "uptime"), {"target": target})
		with data.access.grants as grants
	d.reasons == ["group sre-agents has read-only access to web-staging; exec \"uptime\" is not a read command"]
}

test_read_commands_support_other_glob_syntax if {
	commands := {"web-prod": ["cat /var/log/app-?.log", "ls {/tmp,/var/tmp}", "[a-c]at /etc/hostname"]}
	every command in ["cat /var/log/app-1.log", "ls /var/tmp", "bat /etc/hostname"] {
		d := ssh.decision with input as exec(sre, command) with data.access.read_commands as commands
		d.action == "allow"
	}
}

test_globs_match_within_one_argument if {
	commands := {"web-prod": ["ab*ba", "tail -n * /var/log/*.log", "a*b*c*d", "x**y", "ls /srv/*", "journalctl --since=*"]}
	every command in [
		"abba", "ab-ba", "tail -n 5 /var/log/app.log", "a1b2c3d", "abcd", "xy", "x-y", "ls /srv/app",
		"journalctl --since=today",
	] {
		d := ssh.decision with input as exec(sre, command) with data.access.read_commands as commands
		d.action == "allow"
	}
	every command in [
		"aba", "tail -n 5 /var/log/app.txt", "a1c2b3d", "abc", "x",
		# "*" does not cross "/", climb, or stand for an option the pattern did not start.
		"tail -n 5 /var/log/nginx/app.log", "ls /srv/..", "ls ../srv/x", "tail -n 5 /var/log/../..log",
		"tail -n -f /var/log/app.log", "ab ba",
	] {
		d := ssh.decision with input as exec(sre, command) with data.access.read_commands as commands
		d.action == "approve"
	}
}

test_argv_must_be_the_command_split if {
	allowed := ssh.decision with input as object.union(exec(sre, "uptime"), {"ssh": {"argv": ["uptime"]}})
	allowed.action == "allow"
	without := ssh.decision with input as object.remove(exec(sre, "uptime"), ["argv"])
	without.action == "allow"
	other := ssh.decision with input as object.union(exec(sre, "uptime"), {"ssh": {"argv": ["sh", "-c", "reboot"]}})
	other.action == "approve"
}

test_unknown_group_is_denied if {
	d := ssh.decision with input as exec(identity("agent:report-bot", ["analysts"]), "uptime")
	d == {"action": "deny", "reasons": ["no grant gives [\"analysts\"] access to web-prod"], "mask": []}
}

test_missing_identity_is_denied if {
	d := ssh.decision with input as object.remove(exec(sre, "uptime"), ["identity"])
	d == {"action": "deny", "reasons": ["request has no verified identity (identity.sub is missing)"], "mask": []}
}

test_request_without_command_is_not_a_read_command if {
	d := ssh.decision with input as object.union(exec(sre, "uptime"), {"ssh": {"command": null}})
	d.action == "approve"
}

# A make that is undefined stands in for a lib that reaches no decision.
test_no_decision_is_a_deny if {
	ssh.decision == {
		"action": "deny",
		"reasons": ["ssh policy reached no decision"],
		"mask": [],
	} with input as exec(sre, "uptime")
		with data.gatehouse.lib.decision.make as no_decision
}

no_decision(kind, req) := kind if req.no_such_field
