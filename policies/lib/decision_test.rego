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

access_data := {"grants": [write_grant], "masks": {"db": mask}, "approvals": [rule]}

caller(groups) := {
	"identity": {"sub": "u", "groups": groups},
	"target": {"name": "db", "kind": "postgres", "labels": {}},
}

ops := caller(["ops"])

write := {"access": "write", "denials": set()}

read := {"access": "read", "denials": set()}

test_allow if {
	decision.make("postgres", read) == {
		"action": "allow",
		"reasons": ["allowed by grant ops: read access to db"],
		"mask": mask,
	} with input as ops
		with data.access as access_data
}

test_approve if {
	decision.make("postgres", write) == {
		"action": "approve",
		"reasons": ["allowed by grant ops: write access to db", "approval required by rule r: writes need a lead."],
		"mask": mask,
		"approval": approval,
	} with input as ops
		with data.access as access_data
}

test_approved if {
	decision.make("postgres", write) == {
		"action": "allow",
		"reasons": ["allowed by grant ops: write access to db", "approved by approval apr-1 under rule r"],
		"mask": mask,
	} with input as object.union(ops, {"approval": {"id": "apr-1", "status": "approved"}})
		with data.access as access_data
}

test_protocol_denials_deny_and_never_approve if {
	req := object.union(write, {"denials": {"b: no", "a: no"}})
	decision.make("postgres", req) == {"action": "deny", "reasons": ["a: no", "b: no"], "mask": []} with input as ops
		with data.access as access_data
}

test_access_denials_are_added_to_protocol_denials if {
	d := decision.make("postgres", object.union(write, {"denials": {"p"}})) with input as caller(["readers"])
		with data.access as {"grants": [read_grant]}
		with data.gatehouse.postgres.write_reason as "w"
	d.reasons == ["group readers has read-only access to db; w", "p"]
}

test_a_protocol_without_write_reason_still_gets_a_reason if {
	d := decision.make("other", write) with input as object.union(caller(["readers"]), {"target": {"kind": "other"}})
		with data.access as {"grants": [read_grant]}
	d.reasons == ["group readers has read-only access to db; the request needs write access"]
}

test_identity_is_checked_first if {
	d := decision.make("postgres", write) with input as {}
		with data.access as access_data
	d.reasons == ["request has no verified identity (identity.sub is missing)"]
}

test_target_is_checked_next if {
	d := decision.make("postgres", write) with input as object.remove(ops, ["target"])
		with data.access as access_data
	d.reasons == ["request names no target (target.name is missing)"]
}

test_target_kind_must_be_the_protocol if {
	d := decision.make("ssh", read) with input as ops
		with data.access as access_data
	d.reasons == ["target db is of kind \"postgres\", not ssh"]
	untyped_target := object.union(object.remove(ops, ["target"]), {"target": {"name": "db"}})
	untyped := decision.make("ssh", read) with input as untyped_target
		with data.access as access_data
	untyped.reasons == ["target db is of kind none, not ssh"]
}

test_unnamed_grants_and_rules_are_still_cited if {
	d := decision.make("postgres", write) with input as ops
		with data.access as {
			"grants": [object.remove(write_grant, ["name"])],
			"approvals": [{"approvers": ["leads"]}],
		}
	d.reasons == [
		"allowed by grant (unnamed): write access to db",
		"approval required by rule (unnamed)",
	]
}

# A reason that cannot be built must never turn into an allow: with no
# permitting grant, the decision is then undefined (the protocol's default
# denies).
test_no_permitting_grant_never_allows if {
	not decision.make("postgres", write) with input as caller(["readers"])
		with data.access as {"grants": [read_grant]}
		with data.gatehouse.lib.access.refusals as no_reason
}

no_reason(req, write_reason) := write_reason if req.no_such_field
