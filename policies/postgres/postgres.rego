# METADATA
# title: Gatehouse PostgreSQL policy
# description: |
#   Decides each statement batch the Postgres proxy forwards. The statements
#   come from the real PostgreSQL parser (libpg-query). A batch needs write
#   access when any statement is not read-only or writes a table. Callers
#   with only read grants may not call the functions listed in
#   data.access.postgres.readonly_denied_functions.
package gatehouse.postgres

import data.gatehouse.lib.access
import data.gatehouse.lib.decision as lib

# METADATA
# description: The decision for input.postgres; engine/policy/decision.ts checks its shape.
# scope: document
# entrypoint: true
default decision := {
	"action": "deny",
	"reasons": ["postgres policy reached no decision"],
	"mask": [],
}

decision := lib.make("postgres", {"access": needed, "denials": denials})

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

# A statement is a write unless the parser says it is read-only; a missing
# readonly flag counts as a write.
writes(statement) if not statement.readonly == true

writes(statement) if {
	some table in statement.tables
	table.access == "write"
}

statement_write_reason(statement) := concat("", [verb(statement), " writes ", concat(", ", names)]) if {
	names := sort({table_name(table) | some table in statement.tables; table.access == "write"})
	count(names) > 0
} else := concat("", [verb(statement), " is not read-only"])

# A statement whose kind is missing or malformed is still named.
verb(statement) := upper(kind) if {
	kind := object.get(statement, "kind", "statement")
	is_string(kind)
} else := "STATEMENT"

table_name(table) := concat(".", [table.schema, table.name]) if {
	is_string(table.schema)
	table.schema != ""
} else := table.name

denials contains "postgres request carries no parsed statements (postgres.statements)" if not statements_given

denials contains reason if {
	count(access.grants) > 0
	not access.has_write_grant
	some statement in statements
	some function in statement.functions
	is_string(function)
	base_name(function) in readonly_denied_functions
	reason := concat("", [
		"function ", function, " is not allowed with read-only access to ",
		access.target_name,
	])
}

# Note: `not is_array(input.x)` is undefined, not true, when input.x is missing.
statements_given if is_array(input.postgres.statements)

# Bare lowercase names (the data tests in policies/data check that).
default readonly_denied_functions := []

readonly_denied_functions := data.access.postgres.readonly_denied_functions

# "pg_catalog.Set_Config" -> "set_config"
base_name(function) := lower(parts[count(parts) - 1]) if parts := split(function, ".")
