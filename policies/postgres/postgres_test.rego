package gatehouse.postgres_test

import data.gatehouse.postgres

# Inputs as the Postgres proxy builds them.

identity(sub, groups) := {
	"sub": sub, "iss": "https://idp.example.com", "groups": groups,
	"agent": true, "act": null, "claims": {},
}

analyst := identity("agent:report-bot", ["analysts"])

dba := identity("bob@example.com", ["dba"])

sre := identity("agent:sre-copilot", ["sre-agents"])

orders_db := {"name": "orders-db", "kind": "postgres", "labels": {"env": "prod", "data": "pii"}}

staging_db := {"name": "staging-db", "kind": "postgres", "labels": {"env": "staging"}}

request(who, target, statements) := {
	"identity": who,
	"target": target,
	"session": {"id": "sess-1"},
	"now_ns": 1767225600000000000,
	"approval": null,
	"postgres": {
		"database": "orders", "role": "gatehouse_orders", "protocol": "extended",
		"text": "-- statement text is not used by policy", "statements": statements,
	},
}

statement(kind, readonly, tables, functions) := {
	"kind": kind, "readonly": readonly,
	"tables": [{"schema": schema, "name": name, "access": access} | some [schema, name, access] in tables],
	"functions": functions,
}

select_customers := statement("select", true, [["public", "customers", "read"]], [])

delete_orders := statement("delete", false, [["public", "orders", "write"]], [])

update_orders := statement("update", false, [["public", "orders", "write"]], [])

email_mask := {"column": "public.customers.email", "strategy": "partial"}

ssn_mask := {"column": "public.customers.ssn", "strategy": "redact"}

phone_mask := {"column": "public.customers.phone", "strategy": "partial"}

customer_notes_mask := {
	"column": "public.customers.notes", "strategy": "redact",
	"detectors": ["email", "payment_card", "us_ssn", "phone", "iban"],
}

notes_mask := {
	"column": "public.orders.notes", "strategy": "redact",
	"detectors": ["email", "payment_card", "us_ssn", "phone", "iban"],
}

# Every mask on orders-db (and on staging-db, a copy of it), and those the dba is not exempt from.
all_masks := [email_mask, ssn_mask, phone_mask, customer_notes_mask, notes_mask]

dba_masks := [ssn_mask, customer_notes_mask, notes_mask]

dba_approval := {"groups": ["dba"], "min": 1, "ttl_seconds": 900, "mode": "hold"}

test_analyst_select_is_allowed_with_masks if {
	postgres.decision == {
		"action": "allow",
		"reasons": ["allowed by grant analysts-read-orders: read access to orders-db"],
		"mask": all_masks,
		"read_only": true,
	} with input as request(analyst, orders_db, [select_customers])
}

test_only_callers_without_a_write_grant_run_read_only_on_the_server if {
	# A writer's read is not read-only on the server: its transaction may write next.
	not "read_only" in object.keys(postgres.decision) with input as request(dba, orders_db, [select_customers])
	not "read_only" in object.keys(postgres.decision) with input as request(sre, orders_db, [select_customers])

	# A denial runs nothing, so it says nothing about the server's mode.
	not "read_only" in object.keys(postgres.decision) with input as request(analyst, orders_db, [delete_orders])

	# A read sent for approval is prepared before it is approved: the mode goes on first.
	held := postgres.decision with input as request(analyst, orders_db, [select_customers])
		with data.access.approvals as [{
			"name": "reads-need-dba", "match": {"labels": {"env": "prod"}, "kinds": ["postgres"], "access": "read"},
			"approvers": ["dba"], "min": 1, "ttl_seconds": 900, "mode": "hold",
		}]
	held.action == "approve"
	held.read_only == true
}

test_analyst_delete_is_denied if {
	postgres.decision == {
		"action": "deny",
		"reasons": ["group analysts has read-only access to orders-db; DELETE writes public.orders"],
		"mask": [],
	} with input as request(analyst, orders_db, [delete_orders])
}

test_table_write_in_a_readonly_statement_is_a_write if {
	# e.g. SELECT ... INTO, or a data-modifying CTE the parser marks per table
	d := postgres.decision with input as request(analyst, orders_db, [statement(
		"select", true,
		[["public", "orders", "read"], ["public", "orders_copy", "write"]], [],
	)])
	d.action == "deny"
	d.reasons == ["group analysts has read-only access to orders-db; SELECT writes public.orders_copy"]
}

test_missing_readonly_flag_is_a_write if {
	d := postgres.decision with input as request(analyst, orders_db, [{"kind": "vacuum", "tables": []}])
	d.reasons == ["group analysts has read-only access to orders-db; VACUUM is not read-only"]
}

test_statement_with_a_malformed_kind_is_still_a_write if {
	d := postgres.decision with input as request(analyst, orders_db, [{"kind": 5, "readonly": false, "tables": []}])
	d.reasons == ["group analysts has read-only access to orders-db; STATEMENT is not read-only"]
}

test_unqualified_tables_and_several_writes_are_named if {
	d := postgres.decision with input as request(analyst, orders_db, [
		select_customers,
		statement("insert", false, [["", "audit", "write"]], []),
		delete_orders,
	])
	d.reasons == ["group analysts has read-only access to orders-db; DELETE writes public.orders; INSERT writes audit"]
}

test_dba_is_not_masked_on_email if {
	d := postgres.decision with input as request(dba, orders_db, [select_customers])
	d.action == "allow"
	d.mask == dba_masks
}

test_dba_write_to_prod_needs_no_approval if {
	postgres.decision == {
		"action": "allow",
		"reasons": ["allowed by grant dba-administer: write access to orders-db"],
		"mask": dba_masks,
	} with input as request(dba, orders_db, [delete_orders])
}

test_sre_agents_write_to_prod_needs_a_dba if {
	postgres.decision == {
		"action": "approve",
		"reasons": [
			"allowed by grant sre-agents-operate: write access to orders-db",
			"approval required by rule prod-writes-need-dba: Writes to production databases by agents need a DBA's approval.",
		],
		"mask": all_masks,
		"approval": dba_approval,
	} with input as request(sre, orders_db, [update_orders])
}

test_sre_agents_write_to_prod_once_approved_is_allowed if {
	postgres.decision == {
		"action": "allow",
		"reasons": [
			"allowed by grant sre-agents-operate: write access to orders-db",
			"approved by approval apr-7f3a under rule prod-writes-need-dba",
		],
		"mask": all_masks,
	} with input as object.union(
		request(sre, orders_db, [update_orders]),
		{"approval": {"id": "apr-7f3a", "status": "approved"}},
	)
}

test_rejected_approval_does_not_allow if {
	d := postgres.decision with input as object.union(
		request(sre, orders_db, [update_orders]),
		{"approval": {"id": "apr-7f3a", "status": "rejected"}},
	)
	d.action == "approve"
}

test_sre_agents_read_on_prod_needs_no_approval if {
	d := postgres.decision with input as request(sre, orders_db, [select_customers])
	d.action == "allow"
	not d.approval
}

test_sre_agents_write_to_staging_is_allowed if {
	postgres.decision == {
		"action": "allow",
		"reasons": ["allowed by grant sre-agents-operate: write access to staging-db"],
		"mask": all_masks,
	} with input as request(sre, staging_db, [update_orders])
}

test_unknown_group_is_denied if {
	postgres.decision == {
		"action": "deny",
		"reasons": ["no grant gives [\"interns\"] access to orders-db"],
		"mask": [],
	} with input as request(identity("dave@example.com", ["interns"]), orders_db, [select_customers])
}

test_identity_without_groups_is_denied if {
	d := postgres.decision with input as request(identity("erin@example.com", []), orders_db, [select_customers])
	d.reasons == ["identity erin@example.com is in no group, so no grant gives it access to orders-db"]
}

test_missing_identity_is_denied if {
	d := postgres.decision with input as object.remove(request(analyst, orders_db, [select_customers]), ["identity"])
	d == {"action": "deny", "reasons": ["request has no verified identity (identity.sub is missing)"], "mask": []}
}

test_identity_without_sub_is_denied if {
	d := postgres.decision with input as request({"groups": ["dba"]}, orders_db, [select_customers])
	d.action == "deny"
}

test_unknown_target_is_denied if {
	target := {"name": "billing-db", "kind": "postgres", "labels": {"env": "prod"}}
	d := postgres.decision with input as request(dba, target, [select_customers])
	d.reasons == ["no grant gives [\"dba\"] access to billing-db"]
}

test_empty_statement_list_is_read if {
	d := postgres.decision with input as request(analyst, orders_db, [])
	d.action == "allow"
}

test_missing_statements_are_denied if {
	base := request(dba, orders_db, [])
	without_statements := object.union(object.remove(base, ["postgres"]), {"postgres": {"database": "orders"}})
	d := postgres.decision with input as without_statements
	d.reasons == ["postgres request carries no parsed statements (postgres.statements)"]
}

test_readonly_denied_functions_for_read_grants if {
	every function in ["pg_read_file", "pg_catalog.pg_ls_dir", "PG_CATALOG.SET_CONFIG", "dblink", "public.DBLINK_EXEC"] {
		d := postgres.decision with input as request(analyst, orders_db, [statement("select", true, [], ["now", function])])
		d == {
			"action": "deny",
			"reasons": [concat("", ["function ", function, " is not allowed with read-only access to orders-db"])],
			"mask": [],
		}
	}
}

test_no_denied_functions_in_data_denies_none if {
	d := postgres.decision with input as request(analyst, orders_db, [statement("select", true, [], ["pg_read_file"])])
		with data.access.postgres as {}
	d.action == "allow"
}

test_lookalike_function_names_are_allowed if {
	d := postgres.decision with input as request(analyst, orders_db, [statement(
		"select", true, [],
		["pg_read_file_safe", "my_dblink", "pg_catalog.now"],
	)])
	d.action == "allow"
}

test_readonly_denied_functions_do_not_apply_to_write_grants if {
	d := postgres.decision with input as request(dba, orders_db, [statement("select", true, [], ["pg_read_file"])])
	d.action == "allow"
}

test_caller_with_read_and_write_grants_may_call_denied_functions if {
	both := identity("frank@example.com", ["analysts", "dba"])
	d := postgres.decision with input as request(both, orders_db, [statement("select", true, [], ["set_config"])])
	d.action == "allow"
	d.reasons == [
		"allowed by grant analysts-read-orders: read access to orders-db",
		"allowed by grant dba-administer: read access to orders-db",
	]
}

test_target_of_another_kind_is_denied if {
	crm := {"name": "crm-api", "kind": "http", "labels": {"env": "prod"}}
	d := postgres.decision with input as request(sre, crm, [select_customers])
	d.reasons == ["target crm-api is of kind \"http\", not postgres"]
}

# A make that is undefined stands in for a lib that reaches no decision.
test_no_decision_is_a_deny if {
	postgres.decision == {
		"action": "deny",
		"reasons": ["postgres policy reached no decision"],
		"mask": [],
	} with input as request(analyst, orders_db, [select_customers])
		with data.gatehouse.lib.decision.make as no_decision
}

no_decision(kind, req) := kind if req.no_such_field
