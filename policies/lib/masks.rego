# METADATA
# title: Gatehouse masks
# description: |
#   What to mask for the caller: the target's entries in data.access.masks,
#   minus those whose exempt_groups include one of the caller's groups.
#   Entries are returned without exempt_groups, and without detectors when
#   they list none.
package gatehouse.lib.masks

import data.gatehouse.lib.access

# The keys of a mask entry that reach the engine.
entry_keys := ["column", "field", "strategy", "detectors"]

entry_keys_without_detectors := ["column", "field", "strategy"]

# METADATA
# description: |
#   The entries of the target's data.access.masks that apply to the caller.
# scope: document
default for_caller := []

for_caller := applicable(data.access.masks[access.target_name], access.caller_groups)

# METADATA
# description: The entries of `masks` that apply to a caller in `groups` (a list or set).
applicable(masks, groups) := [entry(mask) |
	some mask in masks
	not exempt(mask, groups)
]

exempt(mask, groups) if {
	some group in mask.exempt_groups
	group in groups
}

# An entry that already has only the keys the engine takes is passed on as
# it is: copying it with object.filter is one of the costlier steps of a
# decision in WASM.
entry(mask) := mask if {
	count(mask) == 2
	mask.strategy
	target_key(mask)
} else := mask if {
	count(mask) == 3
	mask.strategy
	target_key(mask)
	count(mask.detectors) > 0
} else := object.filter(mask, entry_keys) if {
	count(mask.detectors) > 0
} else := object.filter(mask, entry_keys_without_detectors)

target_key(mask) if mask.column

target_key(mask) if mask.field
