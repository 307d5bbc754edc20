package gatehouse.lib.decision_test

import data.gatehouse.lib.decision

write_grant := {"name": "ops", "groups": ["ops"], "targets": ["db"], "access": "write"}

read_grant := {"name": "readers", "groups": ["readers"], "targets": ["db"], "access": "read"}

mask := [{"column": "s.t.c", "strategy": "redact"}]

approval := {"groups": ["leads"], "min": 1, "ttl_seconds": 60, "mode": "hold"}

rule := {
	"name": "r", "description": "writes need a lead.",
	"match": {"access": "write"},
	"approvers": ["leads"], "min": 1, "ttl_seconds": 60, "mode": "hold",
}

ctx := {
	"identified": true, "subject": "u", "target": "db", "kind": "postgres", "labels": {},
	"groups": {"ops"}, "grants": [write_grant], "masks": mask,
	"approval_rules": [rule], "approved_id": null,
}

write := {"access": "write", "write_reason": "w", "denials": set()}

read := {"access": "read", "write_reason": "", "denials": set()}

test_allow if {
	decision.assemble("postgres", read, ctx) == {
		"action": "allow",
		"reasons": ["allowed by grant ops: read access to db"],
		"mask": mask,
	}
}

test_approve if {
	decision.assemble("postgres", write, ctx) == {
		"action": "approve",
		"reasons": ["allowed by grant ops: write access to db", "approval required by rule r: writes need a lead."],
		"mask": mask,
		"approval": approval,
	}
}

test_approved if {
	decision.assemble("postgres", write, object.union(ctx, {"approved_id": "apr-1"})) == {
		"action": "allow",
		"reasons": ["allowed by grant ops: write access to db", "approved by approval apr-1 under rule r"],
		"mask": mask,
	}
}

test_protocol_denials_deny_and_never_approve if {
	req := object.union(write, {"denials": {"b: no", "a: no"}})
	decision.assemble("postgres", req, ctx) == {"action": "deny", "reasons": ["a: no", "b: no"], "mask": []}
}

test_access_denials_are_added_to_protocol_denials if {
	c := object.union(ctx, {"groups": {"readers"}, "grants": [read_grant]})
	d := decision.assemble("postgres", object.union(write, {"denials": {"p"}}), c)
	d.reasons == ["group readers has read-only access to db; w", "p"]
}

test_identity_is_checked_first if {
	c := object.union(ctx, {"identified": false, "subject": null, "target": null})
	d := decision.assemble("postgres", write, c)
	d.reasons == ["request has no verified identity (identity.sub is missing)"]
}

test_target_is_checked_next if {
	d := decision.assemble("postgres", write, object.union(ctx, {"target": null}))
	d.reasons == ["request names no target (target.name is missing)"]
}

test_target_kind_must_be_the_protocol if {
	d := decision.assemble("ssh", read, ctx)
	d.reasons == ["target db is of kind \"postgres\", not ssh"]
}

test_make_reads_the_context_from_input if {
	d := decision.make("postgres", read) with input as {
		"identity": {"sub": "u", "groups": ["ops"]},
		"target": {"name": "db", "kind": "postgres", "labels": {}},
	}
		with data.access as {"grants": [write_grant], "masks": {"db": mask}}
	d == {"action": "allow", "reasons": ["allowed by grant ops: read access to db"], "mask": mask}
}

test_unnamed_grants_and_rules_are_still_cited if {
	# object.union merges nested objects, so drop the keys being replaced
	c := object.union(object.remove(ctx, ["grants", "approval_rules"]), {
		"grants": [object.remove(write_grant, ["name"])],
		"approval_rules": [{"approvers": ["leads"]}],
	})
	decision.assemble("postgres", write, c).reasons == [
		"allowed by grant (unnamed): write access to db",
		"approval required by rule (unnamed)",
	]
}
