package gatehouse.lib.approvals_test

import data.gatehouse.lib.approvals

rules := [
	{
		"name": "any-write", "description": "any write",
		"match": {"access": "write"},
		"approvers": ["leads"], "min": 1, "ttl_seconds": 900, "mode": "ticket",
	},
	{
		"name": "prod-db-agents", "description": "prod db writes by agents",
		"match": {"labels": {"env": "prod"}, "kinds": ["postgres"], "access": "write", "requester_groups": ["agents"]},
		"approvers": ["dba"], "min": 2, "ttl_seconds": 900, "mode": "hold",
	},
	{
		"name": "prod-db-agents-short", "description": "same, shorter",
		"match": {"labels": {"env": "prod"}, "kinds": ["postgres", "ssh"], "requester_groups": ["agents", "bots"]},
		"approvers": ["dba"], "min": 2, "ttl_seconds": 300, "mode": "hold",
	},
	{"name": "pii-reads", "match": {"labels": {"data": "pii"}, "access": "read"}, "approvers": ["privacy"]},
]

prod_pii := {"env": "prod", "data": "pii"}

test_rules_come_from_data if {
	approvals.rules == rules with data.access.approvals as rules
	approvals.rules == [] with data.access as {}
}

test_no_rule_matches if {
	approvals.strictest([rules[1]], "write", "http", {"env": "dev"}, {"x"}) == null
	approvals.strictest([], "write", "http", {}, set()) == null
}

test_a_rule_without_match_keys_matches_everything if {
	catch_all := {"name": "all", "approvers": ["a"]}
	approvals.strictest([catch_all], "read", "http", {}, set()) == catch_all
	approvals.approval(catch_all) == {"groups": ["a"], "min": 1, "ttl_seconds": 900}
}

test_strictest_rule_wins_by_min_then_ttl if {
	approvals.strictest(rules, "write", "postgres", prod_pii, {"agents"}).name == "prod-db-agents-short"
	approvals.strictest(rules, "read", "postgres", prod_pii, {"agents"}).name == "prod-db-agents-short"
	approvals.strictest(rules, "read", "postgres", prod_pii, {"humans"}).name == "pii-reads"
	approvals.strictest(rules, "write", "http", prod_pii, {"humans"}).name == "any-write"
	approvals.approval(rules[2]) == {"groups": ["dba"], "min": 2, "ttl_seconds": 300, "mode": "hold"}
}

test_ties_go_to_the_rule_listed_first if {
	a := {"name": "a", "approvers": ["x"], "min": 1, "ttl_seconds": 60}
	b := {"name": "b", "approvers": ["y"], "min": 1, "ttl_seconds": 60}
	approvals.strictest([a, b], "write", "http", {}, set()).name == "a"
	approvals.strictest([b, a], "write", "http", {}, set()).name == "b"
}

test_each_match_key_must_hold if {
	r := rules[1]
	approvals.matches(r, "write", "postgres", {"env": "prod", "x": "y"}, {"agents"})
	not approvals.matches(r, "read", "postgres", {"env": "prod"}, {"agents"})
	not approvals.matches(r, "write", "http", {"env": "prod"}, {"agents"})
	not approvals.matches(r, "write", "postgres", {"env": "staging"}, {"agents"})
	not approvals.matches(r, "write", "postgres", {}, {"agents"})
	not approvals.matches(r, "write", null, {"env": "prod"}, {"agents"})
	not approvals.matches(r, "write", "postgres", {"env": "prod"}, {"humans"})
	approvals.matches(r, "write", "postgres", {"env": "prod"}, ["bots", "agents"])
}

test_granted_id_needs_status_approved_and_an_id if {
	approvals.granted_id == "apr-1" with input as {"approval": {"id": "apr-1", "status": "approved"}}
	approvals.granted_id == null with input as {"approval": {"id": "apr-1", "status": "pending"}}
	approvals.granted_id == null with input as {"approval": {"id": "", "status": "approved"}}
	approvals.granted_id == null with input as {"approval": null}
	approvals.granted_id == null with input as {}
}
