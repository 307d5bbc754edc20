# Issue #4: the bypasses a caller with only read grants must not get
# through, each with its reason, and controls showing what stays allowed.
# Shares the fixtures (request, statement, analyst, dba, ...) of
# postgres_test.rego, in the same package.
package gatehouse.postgres_test

import data.gatehouse.postgres

# The decision denying an analyst on orders-db for one reason.
analyst_denied(why) := {"action": "deny", "reasons": [concat("", [read_only, why])], "mask": []}

read_only := "group analysts has read-only access to orders-db; "

# A statement without tables or functions, with extra facts.
bare(kind, readonly, extra) := object.union({"kind": kind, "readonly": readonly, "tables": [], "functions": []}, extra)

copy_to_program := object.union(statement("copy", false, [["public", "customers", "read"]], []), {"program": true})

program_reason := "COPY ... PROGRAM runs a shell command on the database server"

program_denial := concat("", [
	program_reason,
	", and no grant on orders-db allows it (data.access.postgres.copy_program_grants)",
])

test_copy_to_program_is_denied_to_everyone if {
	postgres.decision == {
		"action": "deny",
		"reasons": [program_denial, concat("", [read_only, program_reason])],
		"mask": [],
	} with input as request(analyst, orders_db, [copy_to_program])
	from_program := object.union(statement("copy", false, [["public", "orders", "write"]], []), {"program": true})
	d := postgres.decision with input as request(analyst, orders_db, [from_program])
	concat("", [read_only, program_reason]) in d.reasons
	postgres.decision == {"action": "deny", "reasons": [program_denial], "mask": []}
		with input as request(dba, orders_db, [copy_to_program])
}

test_copy_program_needs_a_listed_write_grant if {
	postgres.decision.action == "allow" with input as request(dba, orders_db, [copy_to_program])
		with data.access.postgres.copy_program_grants as ["dba-administer"]
	postgres.decision.action == "deny" with input as request(dba, orders_db, [copy_to_program])
		with data.access.postgres.copy_program_grants as ["sre-agents-operate"]
	d := postgres.decision with input as request(analyst, orders_db, [copy_to_program])
		with data.access.postgres.copy_program_grants as ["analysts-read-orders"]
	program_denial in d.reasons
}

test_copy_to_a_server_file_is_a_write if {
	to_file := statement("copy", false, [["public", "orders", "read"]], [])
	postgres.decision == analyst_denied("COPY is not read-only (only COPY ... TO STDOUT of a plain query is)")
		with input as request(analyst, orders_db, [to_file])
	to_stdout := statement("copy", true, [["public", "orders", "read"]], [])
	postgres.decision.action == "allow" with input as request(analyst, orders_db, [to_stdout])
}

test_file_remote_and_session_functions_are_denied_to_analysts if {
	every function in [
		"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
		"dblink", "dblink_exec", "dblink_connect", "nextval", "setval", "set_config", "query_to_xml", "pg_notify",
	] {
		postgres.decision == {
			"action": "deny",
			"reasons": [concat("", ["function ", function, " is not allowed with read-only access to orders-db"])],
			"mask": [],
		} with input as request(analyst, orders_db, [statement("select", true, [], [function])])
	}
}

# Where no column is masked for the caller; see also test_callers_code_is_denied_where_columns_are_masked_for_them.
# Aliases and siblings of the functions above, each with a side effect
# read-only mode does not stop (pg_import_system_collations and
# pg_replication_origin_create even write catalogs in a read-only
# transaction; txid_current assigns a transaction id).
test_aliases_and_siblings_of_denied_functions_are_denied_to_analysts if {
	every function in [
		"pg_read_file_old", "pg_rotate_logfile_old", "pg_stat_reset", "pg_stat_reset_shared",
		"pg_stat_reset_single_table_counters", "pg_stat_reset_single_function_counters", "pg_stat_reset_slru",
		"pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats", "pg_stat_statements_reset",
		"pg_replication_origin_create", "pg_replication_origin_drop", "pg_replication_origin_advance",
		"pg_replication_origin_session_setup", "pg_replication_origin_session_reset",
		"pg_replication_origin_xact_setup", "pg_replication_origin_xact_reset", "pg_import_system_collations",
		"pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot", "pg_log_backend_memory_contexts",
		"txid_current", "pg_catalog.pg_current_xact_id", "pg_nextoid", "pg_wal_replay_pause", "pg_wal_replay_resume",
		"brin_summarize_range", "gin_clean_pending_list", "heap_force_kill", "pg_truncate_visibility_map",
		"pg_hba_file_rules", "pg_ident_file_mappings", "pg_show_all_file_settings",
	] {
		postgres.decision == {
			"action": "deny",
			"reasons": [concat("", ["function ", function, " is not allowed with read-only access to orders-db"])],
			"mask": [],
		} with input as request(analyst, orders_db, [statement("select", true, [], [function])])
	}

	# Only read this transaction's id: NULL unless one is assigned, which a read-only caller cannot do.
	every function in ["txid_current_if_assigned", "pg_current_xact_id_if_assigned", "txid_current_snapshot"] {
		postgres.decision.action == "allow"
			with input as request(analyst, orders_db, [statement("select", true, [], [function])])
	}
}

denied_view(name) := {
	"action": "deny",
	"reasons": [concat("", ["view ", name, " is not allowed with read-only access to orders-db"])],
	"mask": [],
}

test_configuration_file_views_are_denied_to_analysts if {
	every schema in ["pg_catalog", "public", ""] {
		every name in ["pg_hba_file_rules", "pg_ident_file_mappings", "pg_file_settings"] {
			postgres.decision == denied_view(name)
				with input as request(analyst, orders_db, [statement("select", true, [[schema, name, "read"]], [])])
		}
	}
	no_schema := {"kind": "select", "readonly": true, "tables": [{"name": "PG_FILE_SETTINGS"}], "functions": []}
	postgres.decision == denied_view("pg_file_settings") with input as request(analyst, orders_db, [no_schema])

	# The DBA may; the analyst may read other catalog views, and a table of its own by that name in another schema.
	hba := statement("select", true, [["pg_catalog", "pg_hba_file_rules", "read"]], [])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [hba])
	postgres.decision.action == "allow"
		with input as request(analyst, orders_db, [statement("select", true, [["pg_catalog", "pg_settings", "read"]], [])])
	postgres.decision.action == "allow"
		with input as request(analyst, orders_db, [statement("select", true, [["reports", "pg_file_settings", "read"]], [])])
	postgres.decision.action == "allow" with input as request(analyst, orders_db, [hba]) with data.access.postgres as {}
}

test_do_block_is_denied if {
	postgres.decision == analyst_denied("DO runs a code block the gateway cannot inspect")
		with input as request(analyst, orders_db, [do_block])
		with data.access.masks as {}
	postgres.decision.action == "allow" with input as request(dba, orders_db, [do_block])
		with data.access.masks as {}
}

test_select_into_is_denied if {
	into := statement("select", false, [["public", "loot", "write"], ["public", "customers", "read"]], [])
	postgres.decision == analyst_denied("SELECT writes public.loot") with input as request(analyst, orders_db, [into])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [into])
}

test_explain_analyze_of_a_write_is_denied if {
	explain_delete := statement("explain", false, [["public", "orders", "write"]], [])
	postgres.decision == analyst_denied("EXPLAIN ANALYZE writes public.orders")
		with input as request(analyst, orders_db, [explain_delete])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [explain_delete])

	# A CTE that writes, and EXECUTE, run too; plain EXPLAIN runs nothing.
	cte := statement("explain", false, [["public", "orders", "write"], ["public", "flags", "read"]], ["count"])
	postgres.decision == analyst_denied("EXPLAIN ANALYZE writes public.orders")
		with input as request(analyst, orders_db, [cte])
	postgres.decision == analyst_denied("EXPLAIN ANALYZE runs a statement that is not read-only")
		with input as request(analyst, orders_db, [bare("explain", false, {})])
	plain := statement("explain", true, [["public", "orders", "read"]], [])
	postgres.decision.action == "allow" with input as request(analyst, orders_db, [plain])
	analyzed := object.union(explain_delete, {"analyze": true})
	postgres.decision == analyst_denied("EXPLAIN ANALYZE writes public.orders")
		with input as request(analyst, orders_db, [analyzed])
}

plain_explain_denial := concat("", [
	"EXPLAIN of a statement that is not read-only takes the table locks that statement would take ",
	"(ROW EXCLUSIVE for a write), held until the transaction ends",
])

test_plain_explain_of_a_write_is_denied_for_its_locks if {
	# EXPLAIN DELETE runs nothing, but planning takes ROW EXCLUSIVE on orders until the transaction ends.
	explain_delete := object.union(statement("explain", false, [["public", "orders", "read"]], []), {"analyze": false})
	postgres.decision == analyst_denied(plain_explain_denial) with input as request(analyst, orders_db, [explain_delete])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [explain_delete])

	# Plain EXPLAIN of a read is a read.
	explain_select := object.union(statement("explain", true, [["public", "orders", "read"]], []), {"analyze": false})
	postgres.decision.action == "allow" with input as request(analyst, orders_db, [explain_select])
}

test_transaction_control_around_reads_is_allowed if {
	batch := [
		bare("begin", true, {}), select_customers, bare("savepoint", true, {}), bare("release", true, {}),
		bare("rollback_to", true, {}), bare("commit", true, {}), bare("rollback", true, {}),
	]
	postgres.decision.action == "allow" with input as request(analyst, orders_db, batch)
}

test_begin_read_write_is_denied if {
	reason := "BEGIN ... READ WRITE starts a read-write transaction"
	begin_rw := bare("begin", false, {"read_write": true})
	postgres.decision == analyst_denied(reason) with input as request(analyst, orders_db, [begin_rw])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [begin_rw])

	# read_write wins over a readonly flag that says otherwise.
	marked := bare("begin", true, {"read_write": true})
	postgres.decision == analyst_denied(reason) with input as request(analyst, orders_db, [marked])
}

test_settings_that_turn_read_only_mode_off_are_denied if {
	every case in [
		["set", {"setting": "transaction"}, "SET transaction"],
		["set", {"setting": "session characteristics"}, "SET session characteristics"],
		["set", {"setting": "default_transaction_read_only", "value": "off"}, "SET default_transaction_read_only"],
		["set", {"setting": "transaction_read_only", "value": "off"}, "SET transaction_read_only"],
		["reset", {"setting": "transaction_read_only"}, "RESET transaction_read_only"],
		["reset", {"setting": "default_transaction_read_only"}, "RESET default_transaction_read_only"],
		["reset", {"setting": "all"}, "RESET all"],
		["discard", {}, "DISCARD"],
	] {
		s := bare(case[0], false, object.union(case[1], {"read_write": true}))
		postgres.decision == analyst_denied(concat("", [case[2], " can turn read-only mode off"]))
			with input as request(analyst, orders_db, [s])
		postgres.decision.action == "allow" with input as request(dba, orders_db, [s])
	}
}

test_read_only_transaction_settings_are_allowed if {
	batch := [
		bare("set", false, {"setting": "transaction"}),
		bare("set", false, {"setting": "session characteristics"}),
		bare("set", false, {"setting": "default_transaction_read_only", "value": "on"}),
		bare("set", false, {"setting": "transaction_read_only", "value": "true"}),
	]
	postgres.decision.action == "allow" with input as request(analyst, orders_db, batch)
}

test_commit_smuggled_before_a_write_is_denied if {
	# BEGIN READ ONLY; SELECT 1; COMMIT; DELETE FROM orders: decided together.
	batch := [bare("begin", true, {}), statement("select", true, [], []), bare("commit", true, {}), delete_orders]
	postgres.decision == analyst_denied("DELETE writes public.orders") with input as request(analyst, orders_db, batch)
}

test_data_modifying_cte_is_denied if {
	cte := statement("select", false, [["public", "orders", "write"]], ["count"])
	postgres.decision == analyst_denied("SELECT writes public.orders") with input as request(analyst, orders_db, [cte])
}

test_select_for_update_is_denied if {
	for_update := statement("select", false, [["public", "orders", "read"]], [])
	postgres.decision == analyst_denied("SELECT ... FOR UPDATE / FOR SHARE locks rows")
		with input as request(analyst, orders_db, [for_update])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [for_update])
}

test_call_is_denied if {
	call := bare("call", false, {"functions": ["refund"]})
	postgres.decision == analyst_denied("CALL runs a procedure, which can write")
		with input as request(analyst, orders_db, [call])
}

test_lock_is_denied if {
	lock := statement("lock", false, [["public", "orders", "read"]], [])
	postgres.decision == analyst_denied("LOCK takes table locks that block other sessions")
		with input as request(analyst, orders_db, [lock])
}

test_notify_is_denied_and_listen_allowed if {
	postgres.decision == analyst_denied("NOTIFY signals other sessions")
		with input as request(analyst, orders_db, [bare("notify", false, {})])
	postgres.decision.action == "allow"
		with input as request(analyst, orders_db, [bare("listen", true, {}), bare("unlisten", true, {})])
}

test_set_role_and_session_authorization_are_denied if {
	role := bare("set", false, {"setting": "role", "value": "admin"})
	postgres.decision == analyst_denied("SET role changes the database role")
		with input as request(analyst, orders_db, [role])
	postgres.decision == analyst_denied("RESET role changes the database role")
		with input as request(analyst, orders_db, [bare("reset", false, {"setting": "role"})])
	postgres.decision == analyst_denied("SET session_authorization changes the session user")
		with input as request(analyst, orders_db, [bare("set", false, {"setting": "session_authorization"})])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [role])
}

test_prepare_of_a_write_is_denied if {
	write := statement("prepare", false, [["public", "orders", "write"]], [])
	postgres.decision == analyst_denied("PREPARE writes public.orders")
		with input as request(analyst, orders_db, [write])
	locking := statement("prepare", false, [["public", "orders", "read"]], [])
	postgres.decision == analyst_denied("PREPARE prepares a statement that is not read-only")
		with input as request(analyst, orders_db, [locking])
	read := statement("prepare", true, [["public", "orders", "read"]], [])
	postgres.decision.action == "allow" with input as request(analyst, orders_db, [read])
}

test_execute_is_denied_to_read_only_callers if {
	execute := bare("execute", false, {})
	postgres.decision == analyst_denied("EXECUTE runs a prepared statement the gateway cannot inspect")
		with input as request(analyst, orders_db, [execute])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [execute])
}

test_declare_cursor_over_a_write_is_denied if {
	locking := statement("declare", false, [["public", "orders", "read"]], [])
	postgres.decision == analyst_denied("DECLARE declares a cursor over a statement that is not read-only")
		with input as request(analyst, orders_db, [locking])
	read := [statement("declare", true, [["public", "orders", "read"]], []), bare("fetch", true, {})]
	postgres.decision.action == "allow" with input as request(analyst, orders_db, read)
}

test_search_path_is_not_a_read_only_setting if {
	search_path := bare("set", false, {"setting": "search_path"})
	why := "SET search_path can make unqualified names resolve to tables the policy did not check"
	postgres.decision == analyst_denied(why)
		with input as request(analyst, orders_db, [search_path])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [search_path])
	show := bare("show", true, {"setting": "search_path"})
	postgres.decision.action == "allow" with input as request(analyst, orders_db, [show])
}

test_harmless_settings_are_allowed if {
	batch := [
		bare("set", false, {"setting": "statement_timeout", "value": "5s"}),
		bare("set", false, {"setting": "application_name", "value": "psql"}),
		bare("set", false, {"setting": "extra_float_digits", "value": "3"}),
		bare("set", false, {"setting": "datestyle"}),
		bare("reset", false, {"setting": "statement_timeout"}),
		bare("set", false, {"setting": "client_encoding", "value": "utf8"}),
		bare("set", false, {"setting": "standard_conforming_strings", "value": "on"}),
		select_customers,
	]
	postgres.decision.action == "allow" with input as request(analyst, orders_db, batch)
	postgres.decision.action == "deny" with input as request(analyst, orders_db, batch) with data.access.postgres as {}
}

test_settings_limited_to_some_values if {
	only := "is allowed with read-only access only to set one of: "
	postgres.decision == analyst_denied(concat("", ["SET client_encoding ", only, "utf8, utf-8, utf_8, unicode"]))
		with input as request(analyst, orders_db, [bare("set", false, {"setting": "client_encoding", "value": "sjis"})])
	postgres.decision == analyst_denied(concat("", ["RESET standard_conforming_strings ", only, "on, true, yes, 1"]))
		with input as request(analyst, orders_db, [bare("reset", false, {"setting": "standard_conforming_strings"})])
}

test_unlisted_settings_are_denied if {
	unlisted := "is not a setting read-only access may change (data.access.postgres.readonly_settings)"
	postgres.decision == analyst_denied(concat("", ["SET work_mem ", unlisted]))
		with input as request(analyst, orders_db, [bare("set", false, {"setting": "work_mem", "value": "1tb"})])
	postgres.decision == analyst_denied(concat("", ["SET ", unlisted]))
		with input as request(analyst, orders_db, [bare("set", false, {})])
	long := concat("", ["a.", concat("", ["xxxxxxxxxx" | some _ in numbers.range(1, 20)])])
	d := postgres.decision with input as request(analyst, orders_db, [bare("set", false, {"setting": long})])
	count(d.reasons[0]) < 250
}

test_idle_timeouts_are_not_read_only_settings if {
	# Off (0) or raised, an idle session in a transaction keeps its locks (ACCESS SHARE blocks DDL) for good.
	unlisted := "is not a setting read-only access may change (data.access.postgres.readonly_settings)"
	every setting in ["idle_in_transaction_session_timeout", "idle_session_timeout"] {
		every value in ["0", "1d", "100ms"] {
			postgres.decision == analyst_denied(concat("", ["SET ", setting, " ", unlisted]))
				with input as request(analyst, orders_db, [bare("set", false, {"setting": setting, "value": value})])
		}
		postgres.decision == analyst_denied(concat("", ["RESET ", setting, " ", unlisted]))
			with input as request(analyst, orders_db, [bare("reset", false, {"setting": setting})])
		postgres.decision.action == "allow"
			with input as request(dba, orders_db, [bare("set", false, {"setting": setting, "value": "0"})])
	}
}

test_other_statements_name_their_kind if {
	postgres.decision == analyst_denied("PREPARE TRANSACTION leaves a prepared transaction holding its locks")
		with input as request(analyst, orders_db, [bare("prepare_transaction", false, {})])
	postgres.decision == analyst_denied("COMMIT PREPARED is not read-only")
		with input as request(analyst, orders_db, [bare("commit_prepared", false, {})])
	postgres.decision == analyst_denied("DISCARD resets session state")
		with input as request(analyst, orders_db, [bare("discard", false, {})])
}

# The postgres data the policy reads (policies/data/access/data.yaml).
test_postgres_data_is_well_formed if {
	pg := data.access.postgres
	every name in pg.readonly_settings {
		name == lower(name)
	}
	every name, values in pg.readonly_setting_values {
		name == lower(name)
		not name in pg.readonly_settings
		count(values) > 0
		every value in values {
			value == lower(value)
		}
	}
	every name in [
		"search_path", "role", "session_authorization", "all",
		"idle_in_transaction_session_timeout", "idle_session_timeout",
	] {
		not name in pg.readonly_settings
		not pg.readonly_setting_values[name]
	}
	write_grants := {grant.name | some grant in data.access.grants; grant.access == "write"}
	every name in pg.copy_program_grants {
		name in write_grants
	}
	every name in pg.code_grants {
		name in write_grants
	}
}

create_function := object.union(bare("create", false, {}), {"object_type": "function"})

create_procedure := object.union(bare("create", false, {}), {"object_type": "procedure"})

do_block := bare("do", false, {})

code_denial(verb) := concat("", [
	verb, " runs code the gateway cannot inspect, which could read columns masked for the caller ",
	"(public.customers.notes, public.customers.ssn, public.orders.notes), and no grant on orders-db allows it ",
	"(data.access.postgres.code_grants)",
])

test_callers_code_is_denied_where_columns_are_masked_for_them if {
	# ssn and the notes are masked for the dba too (email and phone are not: the dba is exempt).
	postgres.decision == {"action": "deny", "reasons": [code_denial("DO")], "mask": []}
		with input as request(dba, orders_db, [do_block])
	postgres.decision.reasons == [code_denial("CREATE FUNCTION")]
		with input as request(dba, orders_db, [create_function])
	postgres.decision.reasons == [code_denial("CREATE PROCEDURE")]
		with input as request(dba, orders_db, [create_procedure])
	d := postgres.decision with input as request(analyst, orders_db, [do_block])
	d.reasons == [
		concat("", [
			"DO runs code the gateway cannot inspect, which could read columns masked for the caller ",
			"(public.customers.email, public.customers.notes, public.customers.phone, public.customers.ssn, ",
			"public.orders.notes), and no grant on ",
			"orders-db allows it (data.access.postgres.code_grants)",
		]),
		concat("", [read_only, "DO runs a code block the gateway cannot inspect"]),
	]
}

test_objects_that_call_functions_unseen_are_the_callers_code if {
	every kind in ["domain", "operator", "aggregate", "cast"] {
		created := object.union(bare("create", false, {}), {"object_type": kind})
		postgres.decision.action == "deny" with input as request(dba, orders_db, [created])
	}
}

test_callers_code_runs_with_a_listed_write_grant_or_no_masks if {
	postgres.decision.action == "allow" with input as request(dba, orders_db, [do_block])
		with data.access.postgres.code_grants as ["dba-administer"]
	postgres.decision.action == "deny" with input as request(dba, orders_db, [do_block])
		with data.access.postgres.code_grants as ["analysts-read-orders"]
	postgres.decision.action == "allow" with input as request(dba, orders_db, [create_function])
		with data.access.masks as {}

	# Other CREATEs, and calling what the database already has, are not the caller's code.
	create_table := object.union(bare("create", false, {}), {"object_type": "table"})
	postgres.decision.action == "allow" with input as request(dba, orders_db, [create_table])
	postgres.decision.action == "allow" with input as request(dba, orders_db, [bare("call", false, {})])
}

call(function) := object.union(select_customers, {"functions": [function]})

test_a_call_that_changes_the_server_is_a_write_held_like_one if {
	# sre-agents write to prod orders-db only with a dba's approval: so do their SELECT lo_unlink(…) and friends.
	changing := [
		"lo_unlink", "pg_catalog.lo_from_bytea", "pg_terminate_backend",
		"setval", "pg_notify", "pg_advisory_lock", "pg_stat_reset", "pg_import_system_collations",
		"pg_replication_origin_create", "heap_force_kill", "pg_rotate_logfile_old",
	]
	every function in changing {
		postgres.decision.action == "approve" with input as request(sre, orders_db, [call(function)])
	}
	postgres.decision.action == "allow" with input as request(sre, orders_db, [call("upper")])
}
