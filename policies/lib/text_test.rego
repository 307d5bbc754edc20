package gatehouse.lib.text_test

import data.gatehouse.lib.text

test_groups_phrase if {
	text.groups_phrase({"a"}) == "group a has"
	text.groups_phrase(["b", "a"]) == "groups a, b have"
}

test_plural if {
	text.plural(["x"], "one", "many") == "one"
	text.plural(["x", "y"], "one", "many") == "many"
	text.plural([], "one", "many") == "many"
}

test_clip if {
	text.clip("abcdef", 3) == "abc..."
	text.clip("abc", 3) == "abc"
	text.clip("日本語です", 2) == "日本..."
}

test_quoting if {
	text.quote("a&b <c>") == "\"a&b <c>\""
	text.quoted_list({"b", "a"}) == "[\"a\",\"b\"]"
	text.quoted_list([]) == "[]"
}
