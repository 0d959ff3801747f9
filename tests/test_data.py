"""The data layer: the kit loads, specs map fields, and every malformed input gets a located error."""

import gzip
import json

import pytest

from bench.data import DataError, EvalPrompt, PreferencePair, RevisionTriple, load, train_val_split


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"q": "What is 2+2?", "a": "It is five.", "b": "It is four."}


def spec(path):
    return f"{path}?prompt=q&initial=a&revised=b"


@pytest.mark.parametrize("name,kind,n", [
    ("expertqa", RevisionTriple, 467), ("qa_feedback", RevisionTriple, 481), ("jfleg", RevisionTriple, 1434),
    ("hh_rlhf", PreferencePair, 2303), ("alpaca_eval", EvalPrompt, 805), ("vicuna", EvalPrompt, 80),
])
def test_kit_sets_load_as_typed_records(name, kind, n):
    records = load(name)
    assert len(records) == n and all(isinstance(r, kind) for r in records)
    assert records[0].prompt[-1]["role"] == "user"


def test_hh_rlhf_dialogue_is_split_into_messages():
    pair = load("hh_rlhf", limit=1)[0]
    assert [m["role"] for m in pair.prompt][:3] == ["user", "assistant", "user"]
    assert pair.chosen != pair.rejected and "Human:" not in pair.chosen


def test_generic_jsonl_with_field_mapping(tmp_path):
    f = write_jsonl(tmp_path / "pairs.jsonl", [GOOD])
    (t,) = load(spec(f))
    assert (t.prompt[0]["content"], t.initial, t.revised) == ("What is 2+2?", "It is five.", "It is four.")
    (p,) = load(spec(f), kind="preference")
    assert (p.chosen, p.rejected) == ("It is four.", "It is five.")


def test_spa_schema_from_local_file(tmp_path):
    row = {"instruction": "Name a colour.", "input": "", "output": "Blue.", "original_output": "Bleu.",
           "revised_output": "Blue."}
    (t,) = load(f"spa:{write_jsonl(tmp_path / 'spa.jsonl', [row])}")
    assert t.initial == "Bleu." and t.revised == "Blue." and t.reference == "Blue."


@pytest.mark.parametrize("rows,line,field,problem", [
    ([GOOD, "{not json"], 2, None, "invalid JSON"),
    ([GOOD, {"q": "x", "b": "y"}], 2, "a", "missing"),
    ([{"q": "x", "a": "  ", "b": "y"}], 1, "a", "empty"),
    ([GOOD, GOOD, {"q": "x", "a": "same", "b": "same"}], 3, "revised", "identical"),
    ([{"q": "x", "a": 3, "b": "y"}], 1, "a", "expected a string"),
])
def test_malformed_rows_name_file_line_and_field(tmp_path, rows, line, field, problem):
    f = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as err:
        load(spec(f))
    e = err.value
    assert (e.path, e.line, e.field) == (str(f), line, field)
    assert problem in str(e) and str(f) in str(e) and f"line {line}" in str(e)


def test_skip_invalid_counts_instead_of_failing(tmp_path):
    f = write_jsonl(tmp_path / "mixed.jsonl", [GOOD, {"q": "x", "a": "", "b": "y"}, GOOD])
    assert len(load(spec(f), skip_invalid=True)) == 2


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load(spec(tmp_path / "absent.jsonl"))
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read file"):
        load(spec(broken))


def test_gzip_jsonl_is_read(tmp_path):
    f = tmp_path / "pairs.jsonl.gz"
    with gzip.open(f, "wt") as g:
        g.write(json.dumps(GOOD) + "\n")
    assert len(load(spec(f))) == 1


def test_unknown_spec_lists_the_named_sets():
    with pytest.raises(DataError, match="expertqa"):
        load("no_such_set")


def test_wrong_record_kind_is_reported():
    with pytest.raises(DataError, match="holds eval prompts, but revision pairs are needed"):
        load("vicuna", kind="revision")


def test_split_is_deterministic_and_order_independent():
    records = load("jfleg")
    train, val = train_val_split(records, 0.1, seed=3)
    train2, val2 = train_val_split(list(reversed(records)), 0.1, seed=3)
    assert {r.source_id for r in val} == {r.source_id for r in val2}
    assert 0.07 < len(val) / len(records) < 0.13
    assert not {r.source_id for r in train} & {r.source_id for r in val}
    _, other = train_val_split(records, 0.1, seed=4)
    assert {r.source_id for r in other} != {r.source_id for r in val}


@pytest.mark.parametrize("row,kind", [
    ({"prompt": "Fix this.", "initial": "teh", "revised": "the"}, RevisionTriple),
    ({"prompt": "Pick one.", "chosen": "Good.", "rejected": "Bad."}, PreferencePair),
    ({"instruction": "Say hi.", "output": "Hi!"}, EvalPrompt),
])
def test_plain_path_with_canonical_field_names_needs_no_mapping(tmp_path, row, kind):
    records = load(str(write_jsonl(tmp_path / "plain.jsonl", [row, row])))
    assert len(records) == 2 and isinstance(records[0], kind)
    if kind is EvalPrompt:
        assert records[0].reference == "Hi!"


def test_non_utf8_file_names_the_line(tmp_path):
    f = tmp_path / "latin1.jsonl"
    f.write_bytes(b"".join([json.dumps(GOOD).encode() + b"\n"] * 3 + ['{"q": "caf\xe9", "a": "x", "b": "y"}\n'.encode("latin-1")]))
    with pytest.raises(DataError, match=r"latin1.jsonl, line 4: not UTF-8"):
        load(spec(f))
