package gatehouse.lib.access_test

import data.gatehouse.lib.access

grants := [
	{"name": "read-a", "groups": ["readers", "auditors"], "targets": ["a"], "access": "read"},
	{"name": "write-a", "groups": ["writers"], "targets": ["a", "b"], "access": "write"},
	{"name": "ssh-b", "groups": ["ops"], "targets": ["b"], "access": "write", "ssh_requests": ["exec", "shell"]},
	{"name": "broken", "groups": ["readers"], "targets": ["a"], "access": "admin"},
]

caller(groups, target) := {"identity": {"sub": "u", "groups": groups}, "target": {"name": target, "kind": "postgres"}}

grant_names(gs) := {g.name | some g in gs}

test_grants_match_target_and_any_group if {
	gs := access.grants with input as caller(["nobody", "writers"], "b") with data.access.grants as grants
	grant_names(gs) == {"write-a"}
	gs2 := access.grants with input as caller(["readers", "ops"], "a") with data.access.grants as grants
	gs2 == [grants[0], grants[3]]
}

test_non_string_groups_are_ignored if {
	groups := access.caller_groups with input as {"identity": {"sub": "u", "groups": ["ok", 7, null, {"g": 1}]}}
	groups == ["ok"]
}

test_groups_that_are_not_a_list_give_no_groups if {
	groups := access.caller_groups with input as {"identity": {"sub": "u", "groups": "writers"}}
	groups == []
	nothing := access.caller_groups with input as {"identity": {"sub": "u"}}
	nothing == []
}

test_identified_needs_a_non_empty_string_sub if {
	access.identified with input as {"identity": {"sub": "u"}}
	not access.identified with input as {"identity": {"sub": ""}}
	not access.identified with input as {"identity": {"sub": 42}}
	not access.identified with input as {"identity": null}
	not access.identified with input as {}
	access.subject == null with input as {}
}

test_target_facts_have_defaults if {
	access.target_name == null with input as {"target": {"name": 3}}
	access.target_kind == null with input as {"target": {"name": "a"}}
	access.target_labels == {} with input as {"target": {"name": "a", "labels": ["env"]}}
	access.target_labels == {"env": "prod"} with input as {"target": {"labels": {"env": "prod"}}}
}

test_has_write_grant if {
	access.has_write_grant with input as caller(["writers"], "a") with data.access.grants as grants
	not access.has_write_grant with input as caller(["readers"], "a") with data.access.grants as grants
}

test_read_grants_permit_read_only if {
	g := grants[0]
	access.permits(g, {"access": "read"})
	not access.permits(g, {"access": "write"})
	not access.permits(grants[3], {"access": "read"})
}

test_write_grants_permit_read_and_write if {
	access.permits(grants[1], {"access": "read"})
	access.permits(grants[1], {"access": "write"})
	not access.permits(grants[1], {"access": "admin"})
}

test_write_grants_permit_listed_ssh_requests if {
	access.permits(grants[1], {"access": "write", "ssh_request": "exec"})
	not access.permits(grants[1], {"access": "write", "ssh_request": "shell"})
	access.permits(grants[2], {"access": "write", "ssh_request": "shell"})
	not access.permits(grants[2], {"access": "write", "ssh_request": "sftp"})
	access.permits(grants[2], {"access": "read", "ssh_request": "exec"})
}

test_permitting_keeps_the_grants_that_permit if {
	gs := access.permitting({"access": "write"}) with input as caller(["readers", "writers"], "a")
		with data.access.grants as grants
	grant_names(gs) == {"write-a"}
	reads := access.permitting({"access": "read"}) with input as caller(["readers", "writers"], "a")
		with data.access.grants as grants
	grant_names(reads) == {"read-a", "write-a"}
}

# refusals is asked only when no applicable grant permits the request.
test_no_grant_reason_lists_the_groups_sorted if {
	reasons := access.refusals({"access": "read"}, "w") with input as caller(["z", "b"], "a")
		with data.access.grants as []
	reasons == {"no grant gives [\"b\",\"z\"] access to a"}
}

test_no_grant_reason_without_groups_names_the_subject if {
	reasons := access.refusals({"access": "read"}, "w") with input as caller([], "a")
		with data.access.grants as grants
	reasons == {"identity u is in no group, so no grant gives it access to a"}
}

test_read_only_reason_names_the_granted_groups if {
	write := {"access": "write"}
	one := access.refusals(write, "UPDATE writes t") with input as caller(["readers", "x"], "a")
		with data.access.grants as [grants[0]]
	one == {"group readers has read-only access to a; UPDATE writes t"}
	two := access.refusals(write, "w") with input as caller(["readers", "auditors"], "a")
		with data.access.grants as [grants[0]]
	two == {"groups auditors, readers have read-only access to a; w"}
}

test_unlisted_reason_names_the_write_grants if {
	req := {"access": "write", "ssh_request": "sftp"}
	one := access.refusals(req, "w") with input as caller(["ops"], "b")
		with data.access.grants as [grants[2]]
	one == {"grant ssh-b does not allow ssh sftp requests on b"}
	two := access.refusals(req, "w") with input as caller(["ops", "writers"], "b")
		with data.access.grants as [grants[1], grants[2]]
	two == {"grants ssh-b, write-a do not allow ssh sftp requests on b"}
}

test_unknown_access_is_never_permitted if {
	reasons := access.refusals({"access": "admin"}, "w") with input as caller(["writers"], "a")
		with data.access.grants as [grants[1]]
	reasons == {"no grant permits \"admin\" access to a"}
}
