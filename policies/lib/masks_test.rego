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
	masks.for_target == entries with input as {"target": {"name": "db"}} with data.access.masks as {"db": entries}
	masks.for_target == [] with input as {"target": {"name": "other"}} with data.access.masks as {"db": entries}
	masks.for_target == [] with input as {"target": {"name": "db"}} with data.access.masks as null
	masks.applicable([], {"analysts"}) == []
}
