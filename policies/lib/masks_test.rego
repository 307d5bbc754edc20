package gatehouse.lib.masks_test

import data.gatehouse.lib.masks

entries := [
	{"column": "s.t.email", "strategy": "partial", "exempt_groups": ["dba", "privacy"]},
	{"column": "s.t.ssn", "strategy": "redact"},
	{"column": "s.t.notes", "strategy": "redact", "detectors": ["email"]},
	{"column": "s.t.memo", "strategy": "hash", "detectors": [], "exempt_groups": []},
	{"field": "items[*].secret", "strategy": "null", "comment": "unknown keys are not passed on"},
]

test_masks_apply_outside_exempt_groups if {
	masks.applicable(entries, {"analysts"}) == [
		{"column": "s.t.email", "strategy": "partial"},
		{"column": "s.t.ssn", "strategy": "redact"},
		{"column": "s.t.notes", "strategy": "redact", "detectors": ["email"]},
		{"column": "s.t.memo", "strategy": "hash"},
		{"field": "items[*].secret", "strategy": "null"},
	]
}

test_any_exempt_group_lifts_a_mask if {
	m := masks.applicable(entries, {"analysts", "privacy"})
	{entry.column | some entry in m} == {"s.t.ssn", "s.t.notes", "s.t.memo"}
	count(m) == 4
}

test_masks_are_looked_up_by_target if {
	caller := {"identity": {"sub": "u", "groups": ["dba"]}, "target": {"name": "db"}}
	masks.for_caller == [
		{"column": "s.t.ssn", "strategy": "redact"},
		{"column": "s.t.notes", "strategy": "redact", "detectors": ["email"]},
		{"column": "s.t.memo", "strategy": "hash"},
		{"field": "items[*].secret", "strategy": "null"},
	] with input as caller
		with data.access.masks as {"db": entries}
	masks.for_caller == [] with input as object.union(caller, {"target": {"name": "other"}})
		with data.access.masks as {"db": entries}
	masks.for_caller == [] with input as caller with data.access.masks as null
	masks.applicable([], {"analysts"}) == []
}

test_entries_with_only_engine_keys_are_passed_on_as_they_are if {
	clean := [
		{"column": "s.t.c", "strategy": "redact"},
		{"field": "f", "strategy": "hash", "detectors": ["email"]},
	]
	masks.applicable(clean, []) == clean
	masks.applicable([{"column": "s.t.c", "field": "f", "strategy": "redact"}], []) == [
		{"column": "s.t.c", "field": "f", "strategy": "redact"},
	]
	masks.applicable([{"column": "s.t.c", "detectors": ["email"], "strategy": "redact", "note": "x"}], []) == [
		{"column": "s.t.c", "detectors": ["email"], "strategy": "redact"},
	]
}
