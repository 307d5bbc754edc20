# METADATA
# title: Gatehouse PostgreSQL policy
# description: |
#   Decides each statement batch the Postgres proxy forwards: the whole
#   batch at once, so one denied statement stops them all. The statements
#   come from the real PostgreSQL parser (libpg-query); the facts are
#   described in proxies/postgres/sql/facts.ts.
#
#   A batch needs write access when any statement is not read-only, writes
#   a table, asks for read-write mode (read_write), or (for a caller with a
#   write grant) calls a function in data.access.postgres.
#   state_changing_functions, so approval rules for writes apply to
#   SELECT lo_unlink(…) too. Exceptions for
#   callers with only read grants:
#     - SET / RESET of a setting in data.access.postgres.readonly_settings,
#       or to a value listed in readonly_setting_values, is read-only.
#       search_path is deliberately not listed: the analyser reports
#       unqualified tables in "public", and a changed search_path would
#       make them name tables the policy never saw.
#     - BEGIN (without READ WRITE), COMMIT, ROLLBACK, SAVEPOINT, RELEASE,
#       LISTEN and UNLISTEN are read-only facts already.
#   Callers with only read grants may not call the functions listed in
#   data.access.postgres.readonly_denied_functions, read PostgreSQL's own
#   views listed in readonly_denied_views, nor EXECUTE a prepared statement
#   (the analyser cannot see what it runs), nor EXPLAIN one that is not
#   read-only (planning it takes its table locks until the transaction
#   ends).
#
#   An allowed statement (or one sent for approval) of a caller without a
#   write grant on the target carries "read_only": true, and the proxy
#   turns the server's read-only mode on for the session
#   (default_transaction_read_only).
#
#   COPY ... TO/FROM PROGRAM runs a shell command on the database server:
#   it is denied to everyone, unless a write grant that applies is named in
#   data.access.postgres.copy_program_grants.
#
#   Code the caller writes (a DO block, CREATE [OR REPLACE] FUNCTION or
#   PROCEDURE, and the DOMAIN, OPERATOR, AGGREGATE and CAST that call
#   functions unseen) could read a column masked for the caller and return it,
#   raise it in a notice or copy it into a table, where no mask follows. It
#   is denied to callers with column masks on the target, unless a write
#   grant that applies is named in data.access.postgres.code_grants.
#
#   Inputs read: identity.sub (must be present; named in the reason when
#   the caller has no groups), identity.groups, target.{name,kind,labels},
#   approval (only when an approval rule matches), and postgres.statements.
#   Never now_ns, claims, act, session, postgres.text, database or role.
package gatehouse.postgres

import data.gatehouse.lib.access
import data.gatehouse.lib.decision as lib
import data.gatehouse.lib.masks
import data.gatehouse.lib.text

# METADATA
# description: The decision for input.postgres; engine/policy/decision.ts checks its shape.
# scope: document
# entrypoint: true
default decision := {
	"action": "deny",
	"reasons": ["postgres policy reached no decision"],
	"mask": [],
}

decision := read_only_on_server(lib.make("postgres", {"access": needed, "denials": denials}))

# METADATA
# description: |
#   An allowed statement of a caller with no write grant on the target also
#   says "read_only": the proxy then runs the session's transactions in the
#   server's read-only mode. Defence in depth: a function defined in the
#   database that writes looks like a read to the analyser, but the server
#   refuses its writes in a read-only transaction. So does a statement sent
#   for approval: the proxy prepares it before it is approved, and the mode
#   must be on before then.
read_only_on_server(d) := object.union(d, {"read_only": true}) if {
	d.action in {"allow", "approve"}
	not access.has_write_grant
} else := d

# METADATA
# description: Why the batch needs write access; lib.decision asks only to explain a denial.
write_reason := concat("; ", sort(write_reasons))

default statements := []

statements := input.postgres.statements

# Only whether some statement writes: the reasons are built (write_reason)
# only to explain a denial.
default needed := "read"

needed := "write" if {
	some statement in statements
	writes(statement)
}

write_reasons contains statement_write_reason(statement) if {
	some statement in statements
	writes(statement)
}

# A statement needs write access unless it is read-only; a missing readonly
# flag counts as a write.
writes(statement) if not read_only(statement)

writes(statement) if {
	some table in statement.tables
	table.access == "write"
}

# A call that changes the server or what other sessions see (a large object,
# a sequence, another session ended) is a write, whatever statement it sits
# in: to the analyser SELECT lo_unlink(…) reads. Callers with only read
# grants may not call these at all (readonly_denied_functions).
writes(statement) if {
	access.has_write_grant
	some function in statement.functions
	is_string(function)
	base_name(function) in state_changing_functions
}

read_only(statement) if {
	statement.readonly == true
	not statement.read_write
}

# SET and RESET change only the session; these settings are harmless.
read_only(statement) if {
	statement.kind in {"set", "reset"}
	not statement.read_write
	settable(statement)
}

settable(statement) if statement.setting in readonly_settings

settable(statement) if statement.value in readonly_setting_values[statement.setting]

# One reason per statement, the most telling first.
statement_write_reason(statement) := concat("", [
	verb(statement),
	" ... PROGRAM runs a shell command on the database server",
]) if {
	statement.program == true
} else := read_write_reason(statement) if {
	statement.read_write == true
} else := concat("", [verb(statement), " writes ", concat(", ", names)]) if {
	names := sort({table_name(table) | some table in statement.tables; table.access == "write"})
	count(names) > 0
} else := concat("", [verb(statement), setting_phrase(statement), " ", setting_reason(statement)]) if {
	statement.kind in {"set", "reset"}
} else := plain_explain_reason if {
	plain_explain(statement)
} else := concat("", [verb(statement), " ", kind_reasons[statement.kind]]) if {
	is_string(statement.kind)
} else := concat("", [verb(statement), " is not read-only"])

plain_explain_reason := concat("", [
	"EXPLAIN of a statement that is not read-only takes the table locks that statement would take ",
	"(ROW EXCLUSIVE for a write), held until the transaction ends",
])

read_write_reason(statement) := "BEGIN ... READ WRITE starts a read-write transaction" if {
	statement.kind == "begin"
} else := concat("", [verb(statement), setting_phrase(statement), " can turn read-only mode off"])

# Why a statement of this kind is not read-only, when it writes no table.
kind_reasons := {
	"call": "runs a procedure, which can write",
	"copy": "is not read-only (only COPY ... TO STDOUT of a plain query is)",
	"declare": "declares a cursor over a statement that is not read-only",
	"discard": "resets session state",
	"do": "runs a code block the gateway cannot inspect",
	"execute": "runs a prepared statement the gateway cannot inspect",
	"explain": "runs a statement that is not read-only",
	"lock": "takes table locks that block other sessions",
	"notify": "signals other sessions",
	"prepare": "prepares a statement that is not read-only",
	"prepare_transaction": "leaves a prepared transaction holding its locks",
	"select": "... FOR UPDATE / FOR SHARE locks rows",
}

setting_reasons := {
	"role": "changes the database role",
	"session_authorization": "changes the session user",
	"search_path": "can make unqualified names resolve to tables the policy did not check",
}

setting_reason(statement) := setting_reasons[statement.setting] if {
	is_string(statement.setting)
} else := concat("", [
	"is allowed with read-only access only to set one of: ",
	concat(", ", readonly_setting_values[statement.setting]),
]) if {
	is_string(statement.setting)
} else := "is not a setting read-only access may change (data.access.postgres.readonly_settings)"

setting_phrase(statement) := concat("", [" ", text.clip(statement.setting, 100)]) if {
	is_string(statement.setting)
} else := ""

# EXPLAIN without ANALYZE runs nothing, but planning a write (or FOR
# UPDATE) takes its locks: then it is not read-only either. Facts without
# "analyze" (older inputs) name EXPLAIN ANALYZE, as before it was reported.
# A statement whose kind is missing or malformed is still named.
verb(statement) := "EXPLAIN" if {
	plain_explain(statement)
} else := "EXPLAIN ANALYZE" if {
	statement.kind == "explain"
	not statement.readonly == true
} else := replace(upper(kind), "_", " ") if {
	kind := object.get(statement, "kind", "statement")
	is_string(kind)
} else := "STATEMENT"

plain_explain(statement) if {
	statement.kind == "explain"
	statement.analyze == false
}

table_name(table) := concat(".", [table.schema, table.name]) if {
	is_string(table.schema)
	table.schema != ""
} else := table.name

denials contains "postgres request carries no parsed statements (postgres.statements)" if not statements_given

denials contains reason if {
	read_grants_only
	some statement in statements
	some function in statement.functions
	is_string(function)
	base_name(function) in readonly_denied_functions
	reason := concat("", [
		"function ", function, " is not allowed with read-only access to ",
		access.target_name,
	])
}

denials contains reason if {
	read_grants_only
	some statement in statements
	some table in statement.tables
	denied_view(table)
	reason := concat("", [
		"view ", lower(table.name), " is not allowed with read-only access to ",
		access.target_name,
	])
}

denials contains program_reason if {
	program_requested
	not program_granted
}

# callers_code first: a batch without such code never builds the masks.
denials contains reason if {
	count(callers_code) > 0
	count(masked_columns) > 0
	not code_granted
	some code in callers_code
	reason := concat("", [
		code, " runs code the gateway cannot inspect, which could read columns masked for the caller (",
		text.clip(concat(", ", masked_columns), 200), "), and no grant on ", access.target_name,
		" allows it (data.access.postgres.code_grants)",
	])
}

# One of PostgreSQL's own views: in pg_catalog, or unqualified (the analyser
# reports "public"; PostgreSQL looks in pg_catalog first).
denied_view(table) if {
	is_string(table.name)
	lower(table.name) in readonly_denied_views
	object.get(table, "schema", "") in {"pg_catalog", "public", ""}
}

callers_code contains code_verb(statement) if {
	some statement in statements
	runs_callers_code(statement)
}

runs_callers_code(statement) if statement.kind == "do"

# Domains (a CHECK can call any function on a value cast to them), operators,
# aggregates and casts route values into functions where no call is written.
runs_callers_code(statement) if {
	statement.kind == "create"
	statement.object_type in {"function", "procedure", "domain", "operator", "aggregate", "cast"}
}

code_verb(statement) := concat(" ", ["CREATE", upper(statement.object_type)]) if {
	statement.kind == "create"
} else := verb(statement)

# Only built when a statement runs the caller's own code.
masked_columns := sort([mask.column | some mask in masks.for_caller; is_string(mask.column)])

# A write grant that applies and is named in code_grants.
code_granted if {
	some grant in access.grants
	grant.access == "write"
	grant.name in code_grants
}

program_requested if {
	some statement in statements
	statement.program == true
}

program_reason := concat("", [
	"COPY ... PROGRAM runs a shell command on the database server, and no grant on ",
	access.target_name, " allows it (data.access.postgres.copy_program_grants)",
])

# Only read grants apply to the caller and target.
read_grants_only if {
	count(access.grants) > 0
	not access.has_write_grant
}

# A write grant that applies and is named in copy_program_grants.
program_granted if {
	some grant in access.grants
	grant.access == "write"
	grant.name in copy_program_grants
}

# Note: `not is_array(input.x)` is undefined, not true, when input.x is missing.
statements_given if is_array(input.postgres.statements)

# Bare lowercase names (the data tests in policies/data check that).
default readonly_denied_functions := []

readonly_denied_functions := data.access.postgres.readonly_denied_functions

# Bare lowercase names of PostgreSQL's own views (data tests check that).
default readonly_denied_views := []

readonly_denied_views := data.access.postgres.readonly_denied_views

default state_changing_functions := []

state_changing_functions := data.access.postgres.state_changing_functions

# Setting names, lowercase, as the parser reports them (facts.ts `setting`).
default readonly_settings := []

readonly_settings := data.access.postgres.readonly_settings

# Setting name -> the lowercase values a read-only caller may SET it to.
default readonly_setting_values := {}

readonly_setting_values := data.access.postgres.readonly_setting_values

# Grant names whose holders may run COPY ... PROGRAM.
default copy_program_grants := []

copy_program_grants := data.access.postgres.copy_program_grants

# Grant names whose holders may run their own code where columns are masked for them.
default code_grants := []

code_grants := data.access.postgres.code_grants

# "pg_catalog.Set_Config" -> "set_config"
base_name(function) := lower(parts[count(parts) - 1]) if parts := split(function, ".")
